"""Chat templates rendered without transformers give transformers' text, byte for byte.

qwenchat renders templates in its own copy of transformers' jinja2 environment (importing
transformers costs seconds of a one-shot question's start). Failure modes, each tested:

- a shipped model's template renders other text than transformers' ``render_jinja_template``
  (whitespace control: trim_blocks/lstrip_blocks; special-token variables; generation
  prompt on/off; a system prompt or not; multi-line and non-ASCII content);
- ``continue_final_message`` cuts the open reply elsewhere than transformers does;
- ``tojson`` escapes HTML characters (jinja's own filter does, transformers' does not);
- a template's ``raise_exception`` does not fail the render;
- the sandbox is weaker: a template reaching a dunder attribute or storing an underscore name
  on a namespace renders instead of failing;
- ``{% generation %}`` (transformers' assistant-mask tag) fails to parse;
- rendering imports transformers after all.

The oracle is transformers' own ``render_jinja_template`` (imported only by this test).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from qwenchat.models.jinja_render import render_template
from qwenchat.models.registry import MODELS
from qwenchat.models.template import TEMPLATES_DIR


def _hf(source, chat, gen, cont=False, **variables):
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[chat],
        chat_template=source,
        add_generation_prompt=gen,
        continue_final_message=cont,
        **variables,
    )
    return rendered[0]


CHATS = [
    [{"role": "user", "content": "Hi"}],
    [
        {"role": "system", "content": "Be brief.\nVery."},
        {"role": "user", "content": "  你好 😀\n\n<b>&</b>  "},
        {"role": "assistant", "content": "Yo "},
        {"role": "user", "content": "again"},
    ],
]


@pytest.mark.parametrize("spec", list(MODELS), ids=lambda s: s.name)
def test_each_model_template_renders_as_transformers(spec):
    source = (TEMPLATES_DIR / spec.chat.template).read_text(encoding="utf-8")
    variables = dict(spec.chat.special_tokens)
    for chat in CHATS:
        for gen in (True, False):
            assert render_template(source, chat, add_generation_prompt=gen, variables=variables) == _hf(
                source, chat, gen, **variables
            )
    open_reply = [{"role": "user", "content": "Go on"}, {"role": "assistant", "content": "One, two, "}]
    ours = render_template(
        source, open_reply, add_generation_prompt=False, continue_final_message=True,
        variables=variables,
    )
    assert ours == _hf(source, open_reply, False, cont=True, **variables)
    assert ours.rstrip().endswith("One, two,")  # the open reply is last: nothing after it


def test_tojson_does_not_escape_html():
    source = "{{ messages[0] | tojson }}"
    chat = [{"role": "user", "content": "<a href='x'>&</a> é"}]
    ours = render_template(source, chat, add_generation_prompt=False)
    assert ours == '{"role": "user", "content": "<a href=\'x\'>&</a> é"}'
    assert ours == _hf(source, chat, False)


def test_raise_exception_fails_the_render():
    import jinja2

    source = "{% if messages[0].role != 'system' %}{{ raise_exception('system first') }}{% endif %}"
    with pytest.raises(jinja2.TemplateError, match="system first"):
        render_template(source, [{"role": "user", "content": "x"}], add_generation_prompt=False)


def test_sandbox_refuses_what_transformers_refuses():
    import jinja2

    chat = [{"role": "user", "content": "x"}]
    for source in (
        "{{ messages.__class__.__mro__ }}",
        "{% set ns = namespace(_x=1) %}{{ ns._x }}",
        "{% set ns = namespace() %}{% set ns._y = 2 %}",
    ):
        with pytest.raises(jinja2.exceptions.SecurityError):
            render_template(source, chat, add_generation_prompt=False)
        with pytest.raises(jinja2.exceptions.SecurityError):
            _hf(source, chat, False)


def test_generation_tag_and_loop_controls():
    source = (
        "{% for m in messages %}{% if m.role == 'user' %}{% continue %}{% endif %}"
        "{% generation %}[{{ m.content }}]{% endgeneration %}{% endfor %}"
        "{% set d = dict(a=1) %}{{ d.a }}{{ strftime_now('%Y') | length }}"
    )
    chat = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]
    assert render_template(source, chat, add_generation_prompt=False) == "[a]14"
    assert _hf(source, chat, False) == "[a]14"


def test_rendering_does_not_import_transformers():
    code = (
        "import sys\n"
        "from qwenchat.models.template import Message, render_chat\n"
        "render_chat([Message('user', 'hi')])\n"
        "print('transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
