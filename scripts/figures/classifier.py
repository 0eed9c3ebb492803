#!/usr/bin/env python
"""Train the feature classifier of the Fréchet distance on one dataset:
scripts/figures/classifier.py --data D.npz --out-model C.pt --out-json C.json  ${figures}"""

import argparse
import sys

from vaepriors.data.prepare import load_processed
from vaepriors.figures.cli import parse
from vaepriors.figures.frechet import save_classifier, train_classifier
from vaepriors.io import write_json


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out-model", required=True)
    parser.add_argument("--out-json", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args, cfg = parse(parser, argv)
    clf, info = train_classifier(load_processed(args.data), cfg["classifier_hidden"],
                                 cfg["classifier_epochs"], seed=args.seed)
    save_classifier(clf, args.out_model)
    write_json(args.out_json, {"data": args.data, **info})
    print(f"feature classifier: test accuracy {info['test_accuracy']:.4f} "
          f"(validation {info['val_accuracy']:.4f}, epoch {info['best_epoch']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
