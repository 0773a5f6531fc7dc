# Filled in when the binary kernels land.
steport_family(binary
  ORT ort/binary.cc)
