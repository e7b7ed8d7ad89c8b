
import pytest
from helpers import SPACES

from isobn_tune.data.tasks import PAPER_TASKS, TASKS, get_task
from isobn_tune.errors import UserError


@pytest.mark.parametrize(
    ("name", "expected"),
    [("RTE", "rte"), ("sst-2", "sst2"), ("SST-2", "sst2"), ("sts-b", "stsb"), ("MNLI", "mnli")],
)
def test_get_task_accepts_case_and_glue_spellings(name, expected):
    assert get_task(name).name == expected


def test_get_task_rejects_unknown_names_listing_the_allowed_ones():
    with pytest.raises(UserError, match="unknown task 'wnli'.*cola, sst2, mrpc"):
        get_task("wnli")


def test_the_paper_grids_run_on_the_paper_tasks():
    from isobn_tune.space import load_space

    spaces = SPACES
    for path in spaces.glob("paper_*.yaml"):
        assert load_space(path).tasks == list(PAPER_TASKS), path.name


def test_selection_metric_is_reported_on_the_first_dev_split():
    for task in TASKS.values():
        assert task.selection_metric in task.split_metric_names
        assert task.metric_suffix(task.dev_splits[0]) == ""


def test_mnli_reports_mismatched_accuracy_with_suffix():
    mnli = get_task("mnli")
    assert mnli.dev_splits == ("dev_matched", "dev_mismatched")
    assert mnli.metric_names == ("accuracy", "accuracy_mm")
    assert mnli.metric_suffix("dev_mismatched") == "_mm"
