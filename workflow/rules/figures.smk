# Figures stage: built from metrics, models and histories.


def figure_targets():
    return []
