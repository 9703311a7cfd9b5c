"""The gateway tier: the engineering note's Node.js front, in Python (issue 13).

It takes the client's order, calls the executor over HTTP, writes its own timing-log line and
answers with the executor's answer. Its switches `keepalive` and `async_logging` are the note's
Steps 2 and 4; `gateway/linkproxy.py` is the link between it and the executor.
"""
