"""tfmobile: MobileNet-family architectures, LiteRT conversion and on-device benchmarks."""
