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


def test_a_synonym_that_cuts_across_two_words_is_left_alone():
    """The table rewrites strings: 家医 (家庭医生) sits inside 哪家医院 and 国家医保, 的哥 inside 我的哥哥. Where the match
    cuts a word jieba reads there it stays as written; a term inside one word (公积金贷款) is still rewritten."""
    tp = TextProcessor({"家医": "家庭医生", "医保": "基本医疗保险", "的哥": "出租汽车司机", "公积金": "住房公积金",
                        "养老金": "基本养老金"})
    assert tp.canonical("哪家医院能打疫苗") == "哪家医院能打疫苗"
    assert tp.canonical("我妈在老家医院做手术") == "我妈在老家医院做手术"
    assert tp.canonical("国家医保服务平台") == "国家基本医疗保险服务平台"  # 医保, one character on, still is
    assert tp.canonical("签个家医要交钱不") == "签个家庭医生要交钱不"
    assert tp.canonical("重度残疾的哥哥") == "重度残疾的哥哥"
    assert tp.canonical("的哥嫌近不拉") == "出租汽车司机嫌近不拉"
    assert tp.canonical("公积金贷款") == "住房公积金贷款"
    assert tp.canonical("领养老金要什么") == "领基本养老金要什么"  # 领养 is a word, but jieba reads 领 / 养老金


def test_tokens_drop_stopwords_and_add_bigrams():
    tp = TextProcessor({"低保": "最低生活保障"})
    words = tp.words("请问低保怎么申请呀")
    assert words == ["最低生活保障", "申请"]
    assert "#保障" in tp.tokens("低保怎么申请")


def test_empty_and_symbol_only_text_give_no_tokens():
    tp = TextProcessor()
    assert tp.tokens("   ") == []
    assert tp.tokens("？？！！") == []


def test_numpy_static_encoder_matches_sentence_transformers(shared_data_dir):
    """The server encodes with numpy; it must give what the trained StaticEmbedding module gives."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from kb.encoder import StaticDomainEncoder, TrainingEntry, domain_encoder

    tp = TextProcessor({"低保": "最低生活保障"})
    entries = [TrainingEntry("如何申请低保？", ["低保怎么办", "吃低保要什么条件"], "向街道社区事务受理服务中心申请。材料齐全后审核。"),
               TrainingEntry("公积金怎么提取？", ["租房提取公积金", "公积金取出来"], "通过一网通办申请提取。按规定办理。")]
    enc = domain_encoder(entries, {"低保": "最低生活保障"}, tp, shared_data_dir / "encoder-unit")
    assert isinstance(enc, StaticDomainEncoder)
    st = SentenceTransformer(str(enc.model_dir), device="cpu")
    texts = ["低保怎么申请", "公积金提取", "😀", "hello"]
    pre = [tp.analyze(t).static_string() for t in texts]
    assert np.abs(enc.encode_static(pre) - st.encode(pre, normalize_embeddings=True)).max() < 1e-5
    # The build's path looks the tokens up itself instead of joining and re-splitting them: the same vectors.
    assert np.abs(enc.encode_analyses([tp.analyze(t) for t in texts]) - enc.encode_static(pre)).max() < 1e-6
    assert enc.encode(["低保怎么申请"]) @ enc.encode(["最低生活保障如何申请"]).T > 0.5
