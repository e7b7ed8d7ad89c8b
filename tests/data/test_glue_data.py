import logging
from pathlib import Path

import datasets
import numpy as np
import pytest

from isobn_tune.data.glue import (
    DataSource,
    hub_split_name,
    label_names,
    load_split,
    read_examples,
    resolve_glue_dir,
    subsample,
)
from isobn_tune.data.tasks import get_task
from isobn_tune.errors import UserError

README_ROWS = [
    ("cola", "train", 8551),
    ("cola", "dev", 1043),
    ("mrpc", "train", 3668),
    ("mrpc", "dev", 408),
    ("rte", "train", 2490),
    ("rte", "dev", 277),
    ("stsb", "train", 5749),
    ("stsb", "dev", 1500),
]
MNLI_HEADER = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
)


def write_tsv(root: Path, task_dir: str, split: str, lines: list[str]) -> DataSource:
    (root / task_dir).mkdir(parents=True, exist_ok=True)
    (root / task_dir / f"{split}.tsv").write_text("".join(line + "\n" for line in lines))
    return DataSource(root)


@pytest.mark.parametrize(("task", "split", "rows"), README_ROWS)
def test_row_counts_match_the_glue_readme(glue_dir, task, split, rows):
    assert len(load_split(get_task(task), split, DataSource(glue_dir))) == rows


def test_headerless_cola_keeps_its_first_row(glue_dir):
    first = load_split(get_task("cola"), "dev", DataSource(glue_dir))[0]
    assert first == {"text_a": "The sailors rode the breeze clear of the rocks.", "label": 1}


def test_mrpc_header_is_read_despite_the_byte_order_mark(glue_dir):
    ds = load_split(get_task("mrpc"), "dev", DataSource(glue_dir))
    assert ds.column_names == ["text_a", "text_b", "label"]
    assert ds[0]["text_b"] == '"The foodservice pie business does not fit our long-term growth strategy.'


def test_sentences_with_double_quotes_survive_intact(glue_dir):
    raw_lines = (glue_dir / "RTE" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    raw_pairs = [tuple(line.split("\t")[1:3]) for line in raw_lines]
    ds = load_split(get_task("rte"), "dev", DataSource(glue_dir))
    assert list(zip(ds["text_a"], ds["text_b"], strict=True)) == raw_pairs
    assert sum('"' in a + b for a, b in raw_pairs) > 0


def test_rte_string_labels_map_to_hub_ids(glue_dir):
    labels = load_split(get_task("rte"), "dev", DataSource(glue_dir))["label"]
    assert (labels.count(0), labels.count(1)) == (146, 131)  # entailment, not_entailment


def test_stsb_scores_are_floats_in_range(glue_dir):
    ds = load_split(get_task("stsb"), "dev", DataSource(glue_dir))
    scores = np.array(ds["label"])
    assert ds.features["label"].dtype == "float32"
    assert scores[0] == 5.0 and scores.min() >= 0 and scores.max() <= 5


def test_unknown_split_is_a_user_error(glue_dir):
    with pytest.raises(UserError, match="unknown split 'test' for task rte; allowed: \\['train', 'dev'\\]"):
        load_split(get_task("rte"), "test", DataSource(glue_dir))


def test_missing_glue_dir_names_path_and_setting(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError, match=f"{missing} does not exist; set --glue-dir or \\$GLUE_DIR"):
        load_split(get_task("rte"), "dev", DataSource(missing))


def test_missing_task_folder_names_it(glue_dir):
    with pytest.raises(UserError, match=f"task folder {glue_dir / 'SST-2'} does not exist"):
        load_split(get_task("sst2"), "train", DataSource(glue_dir))


def test_missing_split_file_names_it(tmp_path):
    source = write_tsv(tmp_path, "MNLI", "train", [MNLI_HEADER])
    with pytest.raises(UserError, match=f"{tmp_path / 'MNLI' / 'dev_matched.tsv'} does not exist"):
        load_split(get_task("mnli"), "dev_matched", source)


def test_wrong_field_count_names_file_and_line(tmp_path):
    source = write_tsv(
        tmp_path,
        "RTE",
        "dev",
        ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment", "1\tonly one\tentailment"],
    )
    path = tmp_path / "RTE" / "dev.tsv"
    with pytest.raises(UserError, match=f"{path} line 3: expected 4 tab-separated fields, found 3"):
        load_split(get_task("rte"), "dev", source)


def test_unknown_label_names_file_line_and_allowed_labels(tmp_path):
    source = write_tsv(tmp_path, "RTE", "dev", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tneutral"])
    with pytest.raises(
        UserError, match="line 2: label 'neutral' is not one of \\['entailment', 'not_entailment'\\]"
    ):
        load_split(get_task("rte"), "dev", source)


def test_qqp_skips_malformed_rows_with_a_warning(tmp_path, caplog):
    source = write_tsv(
        tmp_path,
        "QQP",
        "dev",
        [
            "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
            "0\t1\t2\tHow do I cook rice?\tHow to cook rice?\t1",
            '1\t3\t4\tWhat is "ML"?',
            "2\t5\t6\tIs it cold?\tIs the sun hot?\t0",
        ],
    )
    with caplog.at_level(logging.WARNING, logger="isobn_tune.data.glue"):
        ds = load_split(get_task("qqp"), "dev", source)
    assert ds.to_dict() == {
        "text_a": ["How do I cook rice?", "Is it cold?"],
        "text_b": ["How to cook rice?", "Is the sun hot?"],
        "label": [1, 0],
    }
    assert "skipped 1 malformed row(s)" in caplog.text


def test_mnli_reads_text_by_header_name_and_gold_label(tmp_path):
    parses = "( x )\t( y )\t(ROOT x)\t(ROOT y)"
    row = f"0\t31193\t31193n\tgov\t{parses}\tThe cat sat.\tA cat sat.\tneutral\tcontradiction"
    source = write_tsv(tmp_path, "MNLI", "dev_mismatched", [MNLI_HEADER, row])
    ds = load_split(get_task("mnli"), "dev_mismatched", source)
    assert ds[0] == {"text_a": "The cat sat.", "text_b": "A cat sat.", "label": 2}


def test_sst2_and_qnli_layouts(tmp_path):
    sst2 = write_tsv(tmp_path, "SST-2", "dev", ["sentence\tlabel", "it 's a charming journey . \t1"])
    assert load_split(get_task("sst2"), "dev", sst2)[0] == {
        "text_a": "it 's a charming journey . ",
        "label": 1,
    }
    qnli = write_tsv(
        tmp_path, "QNLI", "dev", ["index\tquestion\tsentence\tlabel", "0\tWho?\tNobody.\tnot_entailment"]
    )
    assert load_split(get_task("qnli"), "dev", qnli)[0] == {"text_a": "Who?", "text_b": "Nobody.", "label": 1}


def test_hub_split_names():
    assert hub_split_name(get_task("rte"), "dev") == "validation"
    assert hub_split_name(get_task("mnli"), "dev_mismatched") == "validation_mismatched"
    assert hub_split_name(get_task("mnli"), "train") == "train"


def test_hub_columns_are_renamed_and_labels_cast(monkeypatch):
    calls = []

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict(
            {"question": ["Who?"], "sentence": ["Nobody."], "label": [1], "idx": [0]},
            features=datasets.Features(
                {
                    "question": datasets.Value("string"),
                    "sentence": datasets.Value("string"),
                    "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
                    "idx": datasets.Value("int32"),
                }
            ),
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = load_split(get_task("qnli"), "dev", DataSource())
    assert calls == [("nyu-mll/glue", "qnli", "validation")]
    assert ds.features["label"] == datasets.Value("int64")
    assert ds[0] == {"text_a": "Who?", "text_b": "Nobody.", "label": 1}


def test_hub_failure_suggests_a_local_glue_dir(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        UserError, match="could not load nyu-mll/glue rte/validation.*--glue-dir or \\$GLUE_DIR"
    ):
        load_split(get_task("rte"), "dev", DataSource())


def test_resolve_glue_dir_prefers_setting_then_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GLUE_DIR", str(tmp_path))
    assert resolve_glue_dir("/data/glue") == Path("/data/glue")
    assert resolve_glue_dir(None) == tmp_path
    monkeypatch.delenv("GLUE_DIR")
    assert resolve_glue_dir(None) is None


def test_subsample_is_deterministic_subset_in_order(glue_dir):
    ds = load_split(get_task("rte"), "dev", DataSource(glue_dir))
    ds = ds.add_column("row", list(range(len(ds))))
    rows = list(subsample(ds, 50, seed=3)["row"])
    assert rows == list(subsample(ds, 50, seed=3)["row"])
    assert len(rows) == 50 and rows == sorted(set(rows))
    assert list(subsample(ds, 50, seed=4)["row"]) != rows


def test_subsample_keeps_everything_when_unlimited(glue_dir):
    ds = load_split(get_task("rte"), "dev", DataSource(glue_dir))
    assert subsample(ds, None) is ds and subsample(ds, 10_000) is ds


# GLUE's test files: an index column, the texts, no label (CoLA's has a header, unlike its train and dev).
TEST_FILES = {
    "cola": (["index\tsentence", "0\tBill whistled past the house."], [["Bill whistled past the house."]]),
    "sst2": (["index\tsentence", "0\tit 's a charming journey ."], [["it 's a charming journey ."]]),
    "mrpc": (["index\t#1 ID\t#2 ID\t#1 String\t#2 String", "0\t1089874\t1089925\tA b .\tC d ."],
             [["A b ."], ["C d ."]]),
    "qqp": (["id\tquestion1\tquestion2", "0\tWhy?\tHow?"], [["Why?"], ["How?"]]),
    "stsb": (["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2",
              "0\tmain-news\theadlines\t2016\t0001\tnone\tnone\tA b.\tC d."], [["A b."], ["C d."]]),
    "mnli": ([MNLI_HEADER.rsplit("\t", 2)[0], "0\t31\t31e\tfiction\t(a)\t(b)\t(A)\t(B)\tA b.\tC d."],
             [["A b."], ["C d."]]),
    "qnli": (["index\tquestion\tsentence", "0\tWho?\tHe did."], [["Who?"], ["He did."]]),
    "rte": (["index\tsentence1\tsentence2", "0\tA b.\tC d."], [["A b."], ["C d."]]),
}


@pytest.mark.parametrize("task", sorted(TEST_FILES))
def test_every_tasks_test_file_layout_is_read_without_labels(tmp_path, task):
    lines, texts = TEST_FILES[task]
    path = tmp_path / "test.tsv"
    path.write_text("\n".join([lines[0], lines[1], "7" + lines[1][1:]]) + "\n")
    examples = read_examples(get_task(task), path)
    assert examples.ids == ["0", "7"]
    assert examples.texts == [column * 2 for column in texts]


@pytest.mark.parametrize(("task", "split"),
                         [("cola", "dev"), ("mrpc", "dev"), ("stsb", "dev"), ("rte", "train")])
def test_labelled_files_are_read_as_prediction_inputs_too(glue_dir, task, split):
    path = glue_dir / get_task(task).glue_dir_name / f"{split}.tsv"
    examples = read_examples(get_task(task), path)
    labelled = load_split(get_task(task), split, DataSource(glue_dir))
    assert examples.texts[0] == labelled["text_a"]
    assert len(examples.ids) == len(labelled) and len(set(examples.ids)) == len(labelled)


def test_prediction_input_problems_are_user_errors(tmp_path):
    with pytest.raises(UserError, match=r"input file .*missing.tsv does not exist"):
        read_examples(get_task("rte"), tmp_path / "missing.tsv")
    (tmp_path / "short.tsv").write_text("index\tsentence1\tsentence2\n0\tonly one\n")
    with pytest.raises(UserError, match=r"short.tsv line 2: expected 3 tab-separated fields, found 2"):
        read_examples(get_task("rte"), tmp_path / "short.tsv")
    (tmp_path / "other.tsv").write_text("index\tsentence\n0\ta\n")
    with pytest.raises(UserError, match=r"other.tsv line 1: header .* lacks .*\['sentence1', 'sentence2'\]"):
        read_examples(get_task("rte"), tmp_path / "other.tsv")


def test_label_names_are_glues_in_class_id_order():
    assert label_names(get_task("mnli")) == ("entailment", "neutral", "contradiction")
    assert label_names(get_task("rte")) == ("entailment", "not_entailment")
    assert label_names(get_task("cola")) == ("0", "1")
    assert label_names(get_task("stsb")) is None
