// libprotobuf-c, as installed by Debian's libprotobuf-c-dev.
#include <protobuf-c/protobuf-c.h>
