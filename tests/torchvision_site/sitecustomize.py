"""For the nbval pass on a rewritten torchvision-format CIFAR-10 (tests/torchvision_copy.py) only: torchvision
checks batch files against the official download's md5 sums, which a rewritten copy cannot match, so the sums
in ``$L2T_TORCHVISION_MD5`` replace them. Nothing else of torchvision's loading changes."""

import json
import os

if os.environ.get("L2T_TORCHVISION_MD5"):
    from torchvision.datasets import CIFAR10

    _md5 = json.loads(open(os.environ["L2T_TORCHVISION_MD5"]).read())
    CIFAR10.train_list = [[name, _md5[name]] for name, _ in CIFAR10.train_list]
    CIFAR10.test_list = [[name, _md5[name]] for name, _ in CIFAR10.test_list]
    CIFAR10.meta = {**CIFAR10.meta, "md5": _md5["batches.meta"]}
