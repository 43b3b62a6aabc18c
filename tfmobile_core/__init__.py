"""What every stage of the pipeline shares, and nothing else: the typed records the stages hand
each other (`records`), writing files whole or not at all (`atomic`), and how every command
behaves (`cli`: one-line errors, exit status 2 for usage errors, quiet native output).

It imports no TensorFlow and no other tfmobile package, so every stage can depend on it:

    tfmobile_core <- calibration <- converters <- tfmobile <- android_bench
"""
