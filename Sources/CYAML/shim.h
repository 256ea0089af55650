// libyaml (Debian libyaml-dev): the YAML 1.1 event parser under meshctl's YAML reader.
#include <yaml.h>
