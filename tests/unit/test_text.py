from kb.text import Synonyms, TextProcessor, normalize


def test_normalize_folds_width_traditional_and_punctuation():
    assert normalize("我想問一下，ＡＢＣ１２３４５熱線！") == "我想问一下 abc12345热线"


def test_synonym_rewrites_typos_and_abbreviations_to_canonical():
    syn = Synonyms({"低保": "最低生活保障", "低宝": "最低生活保障", "公积金": "住房公积金"})
    assert syn.apply("低宝怎么申请") == "最低生活保障怎么申请"
    assert syn.apply("低保和低宝") == "最低生活保障和最低生活保障"


def test_synonym_does_not_rewrite_inside_its_own_canonical_form():
    syn = Synonyms({"公积金": "住房公积金"})
    assert syn.apply("住房公积金提取") == "住房公积金提取"
    assert syn.apply("公积金提取") == "住房公积金提取"


def test_tokens_drop_stopwords_and_add_bigrams():
    tp = TextProcessor({"低保": "最低生活保障"})
    words = tp.words("请问低保怎么申请呀")
    assert words == ["最低生活保障", "申请"]
    assert "#保障" in tp.tokens("低保怎么申请")


def test_empty_and_symbol_only_text_give_no_tokens():
    tp = TextProcessor()
    assert tp.tokens("   ") == []
    assert tp.tokens("？？！！") == []
