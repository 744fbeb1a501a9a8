"""Frame selections by index and by timestep."""

import numpy as np
import pytest

from quests_hpc.errors import QuestsInputError
from quests_hpc.io.selection import is_single, parse_selection, select_frames

TS = np.array([0, 100, 200, 300, 400, 500, 600, 700, 800, 900])


@pytest.mark.parametrize("spec,expected", [
    ("all", list(range(10))), (":", list(range(10))), ("", list(range(10))), (None, list(range(10))),
    ("-1", [9]), (-1, [9]), (0, [0]), ("0:100:5", [0, 5]), ("2:5", [2, 3, 4]), ("::-3", [9, 6, 3, 0]),
    ("3,5,8", [3, 5, 8]), (" 3 , 1 ", [3, 1]), ("8:,0", [8, 9, 0]), ("1,1", [1, 1]),
    (slice(1, 3), [1, 2]), ([4, -1], [4, 9]), (np.array([2, 3]), [2, 3]), ("20:30", []),
])
def test_by_index(spec, expected):
    assert select_frames(spec, 10, TS).tolist() == expected


@pytest.mark.parametrize("spec,expected", [
    ("t=300", [3]), ("timestep=300", [3]), ("t=100:300", [1, 2, 3]), ("t=:150", [0, 1]),
    ("t=650:", [7, 8, 9]), ("t=0:900:300", [0, 3, 6, 9]), ("t=100::400", [1, 5, 9]),
    ("t=::250", [0, 5]), ("t=all", list(range(10))), ("t=900,0", [9, 0]), ("T=100", [1]),
])
def test_by_timestep(spec, expected):
    assert select_frames(spec, 10, TS).tolist() == expected


def test_by_keyword_and_duplicates():
    assert select_frames("100:300", 10, TS, by="timestep").tolist() == [1, 2, 3]
    ts = np.array([0, 100, 100, 200])  # a restarted run writes timestep 100 twice
    assert select_frames("t=100", 4, ts).tolist() == [1, 2]


@pytest.mark.parametrize("spec,pattern", [
    (10, "frame index 10 out of range"), (-11, "out of range"), ("x", "not an integer"),
    ("1:2:3:4", "too many"), ("::0", "step 0"), ("1,,2", "empty item"),
    ("t=150", "no frame with timestep 150"),
    ("t=::-1", "negative step"), (True, "bad frame selection"), (1.5, "bad frame selection"),
])
def test_errors(spec, pattern):
    with pytest.raises(QuestsInputError, match=pattern):
        select_frames(spec, 10, TS, where="f.lammpstrj")


def test_helpers():
    assert parse_selection("t=1:2") == ("timestep", [slice(1, 2, None)])
    assert is_single(3) and is_single("-1") and is_single("t=100")
    assert not is_single("1:2") and not is_single("1,2") and not is_single(None)
    with pytest.raises(QuestsInputError, match="by"):
        select_frames(0, 10, TS, by="frame")
