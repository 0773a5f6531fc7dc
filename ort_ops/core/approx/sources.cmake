# Filled in when the approx kernels land.
steport_family(approx
  ORT ort/approx.cc)
