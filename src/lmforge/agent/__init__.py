"""A support agent that acts: the order database and its tools (``orders``) and the loop
that lets a served model call them (``loop``)."""
