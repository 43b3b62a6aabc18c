"""On-device benchmark stage (issue #4): adb- and ssh-driven latency runs. Not built yet."""
