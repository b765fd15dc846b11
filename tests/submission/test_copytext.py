"""The copy normaliser and scorers on their own: what forwarders swap is seen through,
what two schools write in their own words is not confused, and the evaluation set's
held-out half meets its targets. No server needed."""

from __future__ import annotations

from citydesk.bench import copies as bench
from services.submission.copytext import (
    KGRAM,
    WINDOW,
    Normaliser,
    TextPrint,
    compare,
    standard_share,
    unit_name_forms,
    winnowed_keys,
)
from shared.orgtree import example_city

NORMALISER = Normaliser.for_org(example_city())
THRESHOLDS = {"resemblance": 0.45, "containment": 0.45, "min_chars": 40}


def normalised(text: str) -> str:
    return NORMALISER.normalise(text)


def printed(text: str) -> TextPrint:
    return TextPrint.of(text, NORMALISER)


def test_any_units_name_and_its_short_forms_become_one_placeholder() -> None:
    forms = unit_name_forms(example_city())
    assert {"东湖区实验小学", "东湖实小", "湖滨镇中心校", "东湖区", "江城一中"} <= set(forms)
    assert normalised("东湖区实验小学举行") == normalised("青石县石门镇中心学校举行") == "U举行"
    assert normalised("东湖一中的同学") == normalised("临江市第二中学的同学")


def test_dates_times_numbers_and_names_beside_a_role_are_swapped_out() -> None:
    first = "3月15日上午9时，校长张晓燕和全校1200余名师生参加，王老师带队。"
    second = "4月2日下午2:30，校长李明和全校八百多名师生参加，陈红梅老师带队。"
    assert normalised(first) == normalised(second)


def test_traditional_script_and_full_width_forms_are_folded() -> None:
    assert normalised("東湖區實驗小學舉行升旗儀式，ＡＢＣ") == normalised(
        "东湖区实验小学举行升旗仪式，abc"
    )


def test_what_a_story_says_in_its_own_words_is_kept() -> None:
    assert normalised("同学们在操场上升旗") != normalised("同学们在礼堂里唱歌")


def test_passages_keep_their_place_in_the_original_body() -> None:
    body = "近日，东湖区实验小学举行升旗仪式。全校师生参加了活动！\n活动很成功"
    text = printed(body)
    assert [body[p.start : p.end] for p in text.passages] == [
        "近日，东湖区实验小学举行升旗仪式。",
        "全校师生参加了活动！\n",
    ]  # the last passage is too short to prove anything


def test_a_shared_run_of_45_characters_always_shares_a_winnowed_key() -> None:
    shared = (
        "同学们在基地老师的指导下分组学习插秧除草和给蔬菜搭架田埂上同学们卷起裤腿踩进泥里满身泥点啊"
    )
    assert len(shared) == WINDOW + KGRAM - 1
    ours = winnowed_keys("今天天气很好我们出发去远足" * 5 + shared + "回来后写了日记")
    theirs = winnowed_keys("学校组织开展劳动教育" + shared + "大家都很开心收获满满" * 5)
    assert set(ours.tolist()) & set(theirs.tolist())


def test_a_forward_with_names_dates_and_counts_swapped_is_a_copy() -> None:
    group = bench.group_texts("安全主题升旗仪式")
    found = compare(printed(group["F"]), printed(group["S"]))
    assert found.is_copy(**THRESHOLDS)
    assert found.ours_in_theirs == 1.0
    assert found.resemblance > 0.9


def test_a_paragraph_lifted_into_a_longer_story_is_found_and_paired() -> None:
    group = bench.group_texts("安全主题升旗仪式")
    original, longer = group["S"], group["R"]
    found = compare(printed(longer), printed(original))
    assert found.resemblance < 0.45  # whole texts are not alike ...
    assert found.theirs_in_ours > 0.6  # ... but most of the original is inside
    assert found.is_copy(**THRESHOLDS)
    lifted = [longer[p.ours[0] : p.ours[1]] for p in found.pairs]
    assert any("珍爱生命，安全第一" in passage for passage in lifted)
    assert all(original[p.theirs[0] : p.theirs[1]] in original for p in found.pairs)


def test_the_same_theme_in_own_words_and_an_independent_report_are_not_copies() -> None:
    group = bench.group_texts("安全主题升旗仪式")
    for other in ("O", "I"):
        found = compare(printed(group[other]), printed(group["S"]))
        assert not found.is_copy(**THRESHOLDS), other


def test_two_schools_republishing_a_standard_notice_are_not_copies() -> None:
    group = bench.group("规定文本防溺水致家长信")
    standard = [printed(text) for text in group["standard"]]
    first, second = printed(group["texts"]["A"]), printed(group["texts"]["B"])
    assert compare(second, first).is_copy(**THRESHOLDS)  # without the registration
    assert not compare(second, first, standard).is_copy(**THRESHOLDS)
    assert standard_share(second, standard) > 0.6
    # copying another school's own words around the notice still counts
    copied = printed(group["texts"]["X"])
    assert compare(copied, first, standard).is_copy(**THRESHOLDS)


def test_the_held_out_half_meets_the_targets_with_thresholds_from_the_tuning_half() -> None:
    result = bench.evaluation()
    assert result["pairs"] >= 200
    assert result["held_out"]["precision"] >= 0.95
    assert result["held_out"]["recall"] >= 0.95
