// Everything else in this target, its public header included, is written by
// `make generate` (scripts/generate.py) into generated/: protoc-c output for the
// fixed-schema messages and the embedded Envoy FileDescriptorSet.
