"""Chat templates rendered with jinja2 alone, in the environment transformers gives them.

``transformers.utils.chat_template_utils`` costs 1-7 s to import (numpy, its lazy-module
machinery; more on a busy machine) and a one-shot ``qwenchat run`` needs a rendered prompt
before Genie can start: that import was most of what the first token waited for beyond
Genie's own load. jinja2 alone imports in a tenth of that.

So the template is rendered here in the same sandbox transformers 5 builds in
``_cached_compile_jinja_template`` (immutable sandbox, ``trim_blocks``/``lstrip_blocks``,
loopcontrols, ``{% generation %}`` accepted, ``tojson`` without HTML escaping,
``raise_exception``, ``strftime_now``, a ``dict`` and a ``namespace`` that refuse dunder and
underscore names) and with the same ``continue_final_message`` cut. The template itself is
still the model's own text, never re-implemented; tests/test_template_jinja_direct.py holds
every result against transformers' ``render_jinja_template``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime

_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


@functools.lru_cache(maxsize=16)
def _compiled(source: str):  # noqa: ANN202 - jinja2.Template
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        # transformers' AssistantTracker: ``{% generation %}`` marks assistant text (for
        # masks); rendering only needs its body.
        tags = {"generation"}

        def parse(self, parser):  # noqa: ANN001, ANN202
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):  # noqa: ANN001, ANN202
            return caller()

    def raise_exception(message):  # noqa: ANN001, ANN202
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):  # noqa: ANN001, ANN202
        # Jinja's own tojson escapes HTML characters; templates expect plain JSON.
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(fmt):  # noqa: ANN001, ANN202
        return datetime.now().strftime(fmt)

    class TemplateDict:
        def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        def __init__(*args, **kwargs):  # noqa: ANN002, ANN003, N805
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):  # noqa: ANN001, ANN204
            TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check_name(name):  # noqa: ANN001, ANN205
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"chat templates cannot store underscore-prefixed attributes ({name!r})"
                )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env.from_string(source)


def render_template(
    source: str,
    messages: Sequence[dict],
    *,
    add_generation_prompt: bool,
    continue_final_message: bool = False,
    variables: dict | None = None,
) -> str:
    """``messages`` (plain role/content dicts) as ``source`` writes them; jinja2's errors
    and ValueError (a final message the template does not show) propagate."""
    chat = [dict(m) for m in messages]
    final = ""
    if continue_final_message:
        if not chat:
            raise ValueError("continue_final_message is set but the conversation is empty")
        content = chat[-1].get("content")
        if not isinstance(content, str):
            raise ValueError("continue_final_message is set but the final message has no content")
        final = content
        if "content" not in source:
            raise ValueError("the chat template does not show the final message's content")
        chat[-1]["content"] = final + _CONTINUE_TAG
    rendered = _compiled(source).render(
        messages=chat,
        tools=None,
        documents=None,
        add_generation_prompt=add_generation_prompt,
        **(variables or {}),
    )
    if continue_final_message:
        if final.strip() not in rendered or _CONTINUE_TAG.strip() not in rendered:
            raise ValueError(
                "continue_final_message is set but the final message does not appear in the "
                "rendered chat"
            )
        at = rendered.rindex(_CONTINUE_TAG.strip())
        if rendered[at : at + len(_CONTINUE_TAG)] == _CONTINUE_TAG:
            rendered = rendered[:at]
        else:  # the template trimmed the message's trailing space
            rendered = rendered[:at].rstrip()
    return rendered
