"""Train one Atari game with the `atari` preset (meant for a GPU) and compare with the paper.

    python benchmarks/atari_curve.py Boxing 2e6      # reference: 85 at 2M frames
    python benchmarks/atari_curve.py Pong 5e6        # reference: 11 at 5M frames

Prints one JSON line: the eval return at FRAMES (mean of --episodes episodes) and its human-normalized
score beside the reference DreamerV2 curve's mean, std, min and max over its seeds at the same frames.
"""
from curve import run

if __name__ == "__main__":
    run("atari", "atari", 4, __doc__)
