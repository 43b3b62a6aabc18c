"""On-device benchmark stage: times .tflite models on Android phones (adb, TFLite's
benchmark_model), Linux boards (ssh, the single-file device runner) and this machine, keeps
every cell in a results store, and compares them in tables and plots like the papers'."""
