"""Train one DeepMind Control task from pixels with the `dmc_vision` preset (meant for a GPU) and
compare with the paper's curve (the reference publishes vision curves only).

    python benchmarks/dmc_curve.py walker_walk 2e5        # reference: 786 at 200k frames
    python benchmarks/dmc_curve.py cartpole_balance 1e5   # reference: 854 at 100k frames

Prints one JSON line: the eval return at FRAMES (mean of --episodes episodes) beside the reference
DreamerV2 curve's mean, std, min and max over its seeds at the same frames (action repeat 2).
"""
from curve import run

if __name__ == "__main__":
    run("dmc", "dmc_vision", 2, __doc__)
