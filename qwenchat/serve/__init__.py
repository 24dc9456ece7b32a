"""`qwenchat serve`: the phone's model behind an OpenAI-compatible chat completions endpoint.

A second front door beside ``qwenchat.cli``, as thin: it parses HTTP JSON (``protocol.py``),
hands the request to a phone's chat session (``phones.py``: the same ``ChatSession`` the
`run` command uses, its live genie-app dialog and its KV cache), routes requests over the
phones (``pool.py``: one request per phone, a bounded queue) and renders JSON or SSE
(``app.py``). Nothing here renders a prompt or talks to a shell: the chat session does.
Heavy imports (starlette, uvicorn) happen only when a server is built.
"""
