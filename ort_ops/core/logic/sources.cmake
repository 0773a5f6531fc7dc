# Filled in when the logic kernels land.
steport_family(logic
  ORT ort/logic.cc)
