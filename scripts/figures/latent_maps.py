#!/usr/bin/env python
"""Figure 3, latent maps at d = 2 coloured by class (test split):
scripts/figures/latent_maps.py --data D.npz --models M.pt ... --out F.png  ${figures}"""

import argparse
import sys

import numpy as np
import torch

from vaepriors.data.prepare import load_processed
from vaepriors.figures import style
from vaepriors.figures.cli import parse
from vaepriors.figures.density import codes
from vaepriors.figures.latents import plot_latent_maps, prior_ellipses
from vaepriors.models import load_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--dataset", default="")
    parser.add_argument("--out", required=True)
    args, _ = parse(parser, argv)
    arrays = load_processed(args.data)
    x = torch.from_numpy(np.asarray(arrays["xb_test"])).float()
    panels = {}
    for path in args.models:
        model = load_model(path)
        panels[model.name] = {"codes": codes(model, x), "ellipses": prior_ellipses(model),
                              "ellipse_label": model.prior_contour_label}
    title = f"{style.dataset_label(args.dataset)}: test codes at d = 2, coloured by class" if args.dataset else ""
    plot_latent_maps(panels, arrays["y_test"], args.out, title=title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
