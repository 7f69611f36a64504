from __future__ import annotations

import pytest

from recsearch.errors import InputError
from recsearch.ingest import parse_event_weights

from .conftest import interactions, run, write_text

LOG = "user_id,item_id,event,timestamp\na,x,view,100000000\na,x,PURCHASE,100000100\nb,x,view,100000200\nb,y,wishlist,100000300\n"


def test_event_weights_sum_per_pair(tmp_path):
    source = write_text(tmp_path / "log.csv", LOG)
    result = run(tmp_path, source, event_weights={"view": 1, "purchase": 5, "wishlist": 2}, split="random")
    weights = {(u, i): w for u, i, w in interactions(result).select("user_id", "item_id", "weight").iter_rows()}
    assert weights == {("a", "x"): 6.0, ("b", "x"): 1.0, ("b", "y"): 2.0}


def test_unknown_event_is_an_error_listing_types(tmp_path):
    source = write_text(tmp_path / "log.csv", LOG)
    with pytest.raises(InputError) as caught:
        run(tmp_path, source, event_weights={"view": 1, "purchase": 5})
    message = str(caught.value)
    assert "'wishlist' (1 rows)" in message
    assert "line 5" in message
    assert "--unknown-events drop" in message


def test_unknown_event_dropped_and_counted(tmp_path):
    source = write_text(tmp_path / "log.csv", LOG)
    result = run(tmp_path, source, event_weights={"view": 1, "purchase": 5}, unknown_events="drop", split="random")
    assert result.report.dropped_rows == {"unknown_event": 1}
    assert result.report.events_valid == 3


def test_weight_column_multiplies_and_min_rating_filters(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id,rating\na,x,5\na,y,2\nb,x,4\nb,y,0\n")
    result = run(tmp_path, source, weight_col="rating", min_rating=4, split="random")
    assert result.report.dropped_rows == {"below_min_rating": 1, "non_positive_weight": 1}
    assert sorted(interactions(result)["weight"].to_list()) == [4.0, 5.0]


def test_min_rating_needs_weight_column(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\n")
    with pytest.raises(InputError, match="--min-rating needs a rating column"):
        run(tmp_path, source, min_rating=4)


def test_non_numeric_weight_is_bad_row(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id,qty\na,x,2\na,y,two\n")
    with pytest.raises(InputError, match=r"line 3, column 'qty'.*'two'"):
        run(tmp_path, source, weight_col="qty")


def test_event_weights_need_event_column(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\n")
    with pytest.raises(InputError, match="--event-weights needs an event column"):
        run(tmp_path, source, event_weights={"view": 1})


@pytest.mark.parametrize("text", ["view", "view=abc", "=3", "view=-1", "view=nan"])
def test_parse_event_weights_rejects(text):
    with pytest.raises(InputError, match="event weight"):
        parse_event_weights(text)


def test_parse_event_weights_lowercases():
    assert parse_event_weights("View=1, addToCart=3") == {"view": 1.0, "addtocart": 3.0}
