"""On-device latency benchmarks for .tflite models: Android over adb, Linux boards over ssh,
and this machine.

  python -m android_bench devices    every reachable target and what it is
  python -m android_bench run        benchmark models x targets x configurations
  python -m android_bench compare    tables and plots from stored results

`python -m android_bench COMMAND --help` explains each command's flags.
"""

import importlib
import sys

from tfmobile_core import cli

COMMANDS = {"devices": "android_bench.cmd_devices", "run": "android_bench.cmd_run",
            "compare": "android_bench.cmd_compare"}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help", "help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) >= 2 else cli.USAGE_EXIT)
    name = sys.argv[1]
    if name not in COMMANDS:
        print(f"android_bench: error: unknown command {name!r}; choose from "
              f"{', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(cli.USAGE_EXIT)
    module = importlib.import_module(COMMANDS[name])
    sys.argv = [f"android_bench {name}", *sys.argv[2:]]
    cli.run(module.main, program=f"android_bench {name}", doc=module.__doc__)


if __name__ == "__main__":
    main()
