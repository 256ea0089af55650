// OpenSSL 3, as installed by Debian's libssl-dev: TLS for the xDS server and
// digests for the snapshot store. Macros Swift cannot expand live in C targets
// that depend on this one (e.g. CTransportShims), not here.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
