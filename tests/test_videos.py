import numpy as np
import pytest

from dreamer2.agent import Agent
from dreamer2.config import make_config
from dreamer2.logger import write_video


def test_openl_layout_truth_model_error_50_frames():
    from gymnasium import spaces
    cfg = make_config("debug")
    agent = Agent(cfg, {"image": ((64, 64, 1), np.uint8)}, spaces.Discrete(3))
    rng = np.random.default_rng(0)
    batch = {"image": rng.integers(0, 256, (6, 50, 64, 64, 1), dtype=np.uint8),
             "action": np.eye(3, dtype=np.float32)[rng.integers(3, size=(6, 50))],
             "reward": np.zeros((6, 50), np.float32), "is_first": np.eye(1, 50, dtype=bool).repeat(6, 0),
             "is_last": np.zeros((6, 50), bool), "is_terminal": np.zeros((6, 50), bool)}
    video = agent.openl_video(batch)
    assert video.shape == (50, 3 * 64, 6 * 64, 1) and video.dtype == np.uint8
    # Top band is the truth, column by column.
    for col in range(6):
        np.testing.assert_array_equal(video[:, :64, col * 64:(col + 1) * 64], batch["image"][col])
    # Bottom band is the error: (model - truth + 1) / 2, so mid-grey where the model equals the truth.
    model = video[:, 64:128].astype(float) / 255
    truth = video[:, :64].astype(float) / 255
    np.testing.assert_allclose(video[:, 128:].astype(float) / 255, np.clip((model - truth + 1) / 2, 0, 1),
                               atol=2.5 / 255)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_write_video_round_trip(tmp_path, suffix):
    import imageio.v2 as imageio
    frames = np.random.default_rng(0).integers(0, 256, (12, 33, 47, 3), dtype=np.uint8)
    path = write_video(tmp_path / f"v{suffix}", frames)
    back = imageio.mimread(path, memtest=False)
    assert len(back) == 12 and back[0].shape[:2] in ((33, 47), (34, 48))
    with pytest.raises(ValueError, match="mp4 or .gif"):
        write_video(tmp_path / "v.avi", frames)
