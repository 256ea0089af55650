// libnghttp2, as installed by Debian's libnghttp2-dev: the HTTP/2 framing
// layer of the xDS server (and of the test/load client).
#include <nghttp2/nghttp2.h>
