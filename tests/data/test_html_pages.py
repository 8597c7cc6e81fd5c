import json

import pytest

from ltm_gym.cli.build_linked_corpus import main as build_main
from ltm_gym.data import CorpusError, load_documents
from ltm_gym.data.html_pages import parse_page, read_pages

PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<html><head><title>Chapter 2.  Layers</title><style>p { color: red }</style></head>
<body>
  <div class="navheader"><a href="prev.html">Prev</a> Navigation text</div>
  <div class="toc"><a href="layers.html#modes">2.1 Modes</a></div>
  <h2 class="title"><a id="top"></a>Chapter 2. Layers</h2>
  <h3>2.1. Modes</h3>
  <p>A layer has a <a href="modes.html#darken">mode</a>, see
     <a href="sub/blend.html">blending</a> and <a href="http://example.org/x.html">the web</a>.</p>
  <img src="images/x.png" alt="x" /><br>
  <p>Same page: <a href="#top">up</a>, <a href="layers.html">here</a>, <a href="missing.html">gone</a>,
     again <a href="modes.html">mode</a>.</p>
  <h3>2.2. Code</h3>
  <pre>gimp  --batch
  x</pre>
  <script>var hidden = 1;</script>
  <div class="navfooter"><a href="next.html">Next</a></div>
</body></html>
"""


def test_page_sections_text_and_links():
    rec = parse_page(PAGE, "layers.html", {"layers.html", "modes.html", "sub/blend.html", "prev.html", "next.html"})
    assert rec["id"] == "layers.html" and rec["title"] == "Chapter 2. Layers"
    # the chapter heading alone joins the first section; navigation, the table of contents, styles
    # and scripts are left out; text inside <pre> keeps its line breaks (spaces collapse everywhere)
    assert rec["sections"] == [
        "Chapter 2. Layers\n2.1. Modes\nA layer has a mode, see blending and the web.\n"
        "Same page: up, here, gone, again mode.",
        "2.2. Code\ngimp --batch\nx",
    ]
    # links once each, in order; not to itself, other sites or pages outside the set
    assert rec["links"] == [["modes.html", "sub/blend.html"], []]


def test_links_resolve_relative_to_the_page():
    html = '<p>See <a href="../top.html">top</a> and <a href="deeper/x.html#a">x</a>, <a href="mailto:a@b">mail</a></p>'
    rec = parse_page(html, "sub/page.html")
    assert rec["links"] == [["top.html", "sub/deeper/x.html"]]
    assert parse_page('<p><a href="../../out.html">out</a></p>', "page.html")["links"] == [[]]


def test_directory_to_records_to_linked_documents(tmp_path, capsys):
    root = tmp_path / "help"
    (root / "sub").mkdir(parents=True)
    (root / "layers.html").write_text(PAGE, encoding="utf-8")
    (root / "modes.html").write_text("<h1>Modes</h1><p>Darken only keeps the darker pixel.</p>", encoding="utf-8")
    (root / "sub" / "blend.html").write_text("<p>Blending mixes layers.</p>", encoding="utf-8")
    (root / "empty.html").write_text("<div class='navheader'>only navigation</div>", encoding="utf-8")
    (root / "style.css").write_text("p {}")
    out = tmp_path / "corpus" / "help.jsonl"
    build_main([str(root), str(out)])
    assert "help.jsonl: 3 pages, 4 sections, 2 links between pages" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["layers.html", "modes.html", "sub/blend.html"]   # the empty page dropped
    assert rows == read_pages(root)
    docs = {d["id"]: d["text"] for d in load_documents(out)}
    assert docs["layers.html"].startswith("Modes\nDarken only keeps the darker pixel.\nBlending mixes layers.\n"
                                          "Chapter 2. Layers")
    cut = {d["id"]: d["text"] for d in load_documents(out, max_links=1, link_chars=12)}
    assert cut["layers.html"].startswith("Modes\nDarken\nChapter 2. Layers")


def test_bad_input_is_named(tmp_path, capsys):
    with pytest.raises(CorpusError, match="nowhere does not exist"):
        read_pages(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="holds no .html pages"):
        read_pages(tmp_path)
    with pytest.raises(SystemExit):
        build_main([str(tmp_path), str(tmp_path / "out.json")])
    assert "out.json must end in .jsonl" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
