"""OpenAI request bodies, validated, and how they become engine parameters.

Field names, defaults and ranges follow the OpenAI API reference. Unknown fields are
ignored (as OpenAI-compatible servers do), so clients that send newer options work.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmforge.data.tools import plain_messages
from lmforge.serve.errors import ApiError
from lmforge.serve.requests import Grammar, RequestParams


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Body):
    type: Literal["text"]
    text: str


class FunctionCall(_Body):
    name: str
    arguments: str = "{}"  # a JSON object, as text (OpenAI's shape)


class ToolCall(_Body):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class FunctionDef(_Body):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON Schema of the arguments object
    strict: bool | None = None  # the arguments always match, strict or not


class ToolDef(_Body):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Body):
    name: str


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: NamedFunction


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # an assistant's calls
    tool_call_id: str | None = None  # a tool message: the call it answers

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(_Body):
    include_usage: bool = False


class JsonSchemaFormat(_Body):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None  # the output always matches the schema, strict or not


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None


class StructuredOutputs(_Body):
    """vLLM's extension (``extra_body={"structured_outputs": {...}}``): exactly one of a
    JSON Schema, a regular expression, a choice among strings or a Lark grammar."""

    json_: dict[str, Any] | None = Field(default=None, alias="json")
    regex: str | None = Field(default=None, min_length=1)
    choice: list[str] | None = Field(default=None, min_length=1)
    grammar: str | None = Field(default=None, min_length=1)

    def as_grammar(self) -> Grammar:
        given = {"json": self.json_, "regex": self.regex, "choice": self.choice,
                 "grammar": self.grammar}  # fmt: skip
        named = [name for name, value in given.items() if value is not None]
        if len(named) != 1:
            raise ValueError(f"give exactly one of json, regex, choice, grammar (got "
                             f"{', '.join(named) or 'none'})")  # fmt: skip
        if self.json_ is not None:
            return Grammar.json_schema(self.json_)
        if self.regex is not None:
            return Grammar("regex", self.regex)
        if self.choice is not None:
            return Grammar.choice(self.choice)
        assert self.grammar is not None
        return Grammar("lark", self.grammar)


Stop = str | Annotated[list[str], Field(max_length=4)] | None


class _Sampling(_Body):
    """Options shared by chat and text completions."""

    model: str
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Stop = None
    seed: int | None = None
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    logit_bias: dict[int, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = None
    response_format: ResponseFormat | None = None
    structured_outputs: StructuredOutputs | None = None  # vLLM's extension
    ignore_eos: bool = False  # vLLM's extension: generate exactly max_tokens
    user: str | None = None

    def grammar_param(self) -> str:
        """The field a grammar error blames."""
        return "response_format" if self.structured_outputs is None else "structured_outputs"

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def grammar(self) -> Grammar | None:
        """What the output must match (``response_format`` or ``structured_outputs``).

        Raises:
            ApiError: (400) both given, ``json_schema`` without its schema, or a
                ``structured_outputs`` that gives not exactly one rule.
        """
        wanted = self.response_format is not None and self.response_format.type != "text"
        if wanted and self.structured_outputs is not None:
            raise ApiError(400, "give response_format or structured_outputs, not both",
                           param="structured_outputs")  # fmt: skip
        if self.structured_outputs is not None:
            try:
                return self.structured_outputs.as_grammar()
            except ValueError as error:
                raise ApiError(400, f"structured_outputs: {error}",
                               param="structured_outputs") from error  # fmt: skip
        if not wanted:
            return None
        assert self.response_format is not None
        if self.response_format.type == "json_object":
            return Grammar.json_schema({"type": "object"})
        if self.response_format.json_schema is None:
            raise ApiError(400, "response_format.json_schema: required when type is "
                           "'json_schema' ({\"name\": ..., \"schema\": {...}})",
                           param="response_format.json_schema")  # fmt: skip
        return Grammar.json_schema(self.response_format.json_schema.schema_)

    def params(self, max_tokens: int, *, logprobs: bool, top_logprobs: int) -> RequestParams:
        return RequestParams(
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=self.stops(),
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            grammar=self.grammar(),
            logit_bias=tuple(sorted((self.logit_bias or {}).items())),
            ignore_eos=self.ignore_eos,
        )


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[ToolDef] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    session_id: str | None = None  # lmforge extension: continue a stored conversation

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def conversation(self) -> list[dict[str, str]]:
        """Messages as the chat template expects them: ``developer`` is a system message,
        and tool calls and tool results are written out as text (``data/tools.py``)."""
        return plain_messages([
            {"role": "system" if m.role == "developer" else m.role, "content": m.text(),
             "tool_calls": [c.model_dump() for c in m.tool_calls or []]}
            for m in self.messages
        ])  # fmt: skip

    def named_tool(self) -> str | None:
        choice = self.tool_choice
        return choice.function.name if isinstance(choice, NamedToolChoice) else None

    def callable_tools(self) -> list[dict[str, Any]]:
        """The tools the model may call (none under ``tool_choice: "none"``); a named
        choice must name one of them.

        Raises:
            ApiError: (400) a tool_choice without tools, or naming no given tool.
        """
        tools = [tool.model_dump(exclude_none=True) for tool in self.tools or []]
        choice = self.tool_choice
        if choice is not None and choice != "none" and not tools:
            raise ApiError(400, "tool_choice: give tools to choose from", param="tool_choice")
        if choice == "none":
            return []
        if isinstance(choice, NamedToolChoice):
            named = [t for t in tools if t["function"]["name"] == choice.function.name]
            if not named:
                given = ", ".join(t["function"]["name"] for t in tools)
                raise ApiError(400, f"tool_choice: no tool named '{choice.function.name}' "
                               f"(tools: {given})", param="tool_choice")  # fmt: skip
        return tools


class InputText(_Body):
    """A text part of a Responses message (``input_text``; ``output_text`` when a model's
    earlier output is sent back)."""

    type: Literal["input_text", "output_text", "text"] = "input_text"
    text: str


class InputMessage(_Body):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputText]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class FunctionCallItem(_Body):
    """A call the model made (a ``function_call`` output item sent back as input)."""

    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = "{}"


class FunctionCallOutput(_Body):
    """A tool's result for the call ``call_id``."""

    type: Literal["function_call_output"]
    call_id: str
    output: str


InputItem = Annotated[
    InputMessage | FunctionCallItem | FunctionCallOutput,
    Field(union_mode="left_to_right"),
]


class ResponseTool(_Body):
    """A function tool in the Responses API's flat shape."""

    type: Literal["function"]
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def as_chat_tool(self) -> dict[str, Any]:
        function = {"name": self.name, "description": self.description,
                    "parameters": self.parameters}  # fmt: skip
        return {"type": "function", "function": {k: v for k, v in function.items() if v}}


class ResponseToolChoice(_Body):
    type: Literal["function"]
    name: str


class TextFormat(_Body):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextOptions(_Body):
    format: TextFormat = Field(default_factory=TextFormat)


class ResponsesRequest(_Body):
    """``POST /v1/responses``: OpenAI's Responses API over the chat engine."""

    model: str
    input: str | list[InputItem]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    tools: list[ResponseTool] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | ResponseToolChoice | None = None
    parallel_tool_calls: bool = True
    text: TextOptions | None = None
    previous_response_id: str | None = None
    store: bool = True
    stream: bool = False
    truncation: Literal["auto", "disabled"] = "disabled"
    metadata: dict[str, str] | None = None
    user: str | None = None

    def messages(self) -> list[dict[str, Any]]:
        """The input as chat messages: a string is one user message; consecutive calls
        become one assistant message with ``tool_calls``; outputs become tool messages."""
        if isinstance(self.input, str):
            return [{"role": "user", "content": self.input}]
        messages: list[dict[str, Any]] = []
        for item in self.input:
            if isinstance(item, InputMessage):
                role = "system" if item.role == "developer" else item.role
                messages.append({"role": role, "content": item.text()})
            elif isinstance(item, FunctionCallItem):
                call = {"id": item.call_id, "type": "function",
                        "function": {"name": item.name, "arguments": item.arguments}}  # fmt: skip
                last = messages[-1] if messages else None
                if last is None or last["role"] != "assistant" or "tool_calls" not in last:
                    last = {"role": "assistant", "content": "", "tool_calls": []}
                    messages.append(last)
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "tool", "content": item.output,
                                 "tool_call_id": item.call_id})  # fmt: skip
        return messages

    def callable_tools(self) -> list[dict[str, Any]]:
        """The tools (chat shape) the model may call; none under ``tool_choice: "none"``.

        Raises:
            ApiError: (400) a tool_choice without tools, or naming no given tool.
        """
        tools = [tool.as_chat_tool() for tool in self.tools or []]
        choice = self.tool_choice
        if choice is not None and choice != "none" and not tools:
            raise ApiError(400, "tool_choice: give tools to choose from", param="tool_choice")
        if isinstance(choice, ResponseToolChoice) and choice.name not in {
            t["function"]["name"] for t in tools
        }:
            given = ", ".join(t["function"]["name"] for t in tools)
            raise ApiError(400, f"tool_choice: no tool named '{choice.name}' (tools: {given})",
                           param="tool_choice")  # fmt: skip
        return [] if choice == "none" else tools

    def named_tool(self) -> str | None:
        return self.tool_choice.name if isinstance(self.tool_choice, ResponseToolChoice) else None

    def grammar(self) -> Grammar | None:
        """What ``text.format`` asks the output to match.

        Raises:
            ApiError: (400) ``json_schema`` without its schema.
        """
        form = self.text.format if self.text is not None else TextFormat()
        if form.type == "json_object":
            return Grammar.json_schema({"type": "object"})
        if form.type == "json_schema":
            if form.schema_ is None:
                raise ApiError(400, "text.format.schema: required when type is 'json_schema'",
                               param="text.format.schema")  # fmt: skip
            return Grammar.json_schema(form.schema_)
        return None

    def params(self, max_tokens: int) -> RequestParams:
        return RequestParams(max_tokens=max_tokens, temperature=self.temperature,
                             top_p=self.top_p, grammar=self.grammar())  # fmt: skip


class AgentTurnRequest(_Body):
    """lmforge extension (``POST /v1/agent/turns``, with ``--agent``): one customer turn
    through the support agent, after the conversation so far."""

    model: str
    message: str = Field(min_length=1)
    history: list[ChatMessage] = Field(default_factory=list)  # earlier turns, no system
    max_steps: int = Field(default=4, ge=1, le=8)
    max_tokens: int = Field(default=256, ge=1)
    # "required": every model call is a tool call (the turn ends at max_steps); for demos
    tool_choice: Literal["auto", "required"] = "auto"


class EmbeddingRequest(_Body):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
    truncate: bool = False  # lmforge extension: cut inputs longer than the model's context

    def texts(self, tokenizer: Any) -> list[str]:
        """The inputs as texts (token-id inputs are decoded with the model's tokenizer)."""
        value: Any = self.input
        if isinstance(value, str):
            return [value]
        if value and all(isinstance(v, int) for v in value):
            return [tokenizer.decode(value)]
        return [v if isinstance(v, str) else tokenizer.decode(v) for v in value]


class ModerationRequest(_Body):
    input: str | list[str]
    model: str | None = None


class ImageInput(_Body):
    """One picture in a request: its file's bytes in base64, or a ``data:`` URL."""

    image: str


class ClassifyRequest(_Body):
    """lmforge extension: label probabilities from a served classifier, or from a served
    image index's text-image model for images (zero-shot over ``labels``)."""

    model: str
    input: str | list[str] | ImageInput | list[ImageInput]
    labels: list[str] | None = None  # images: the labels to choose among
    templates: list[str] | None = None  # images: prompts made from each label


class ImageSearchRequest(_Body):
    """lmforge extension: the images of a served index nearest to a sentence or a picture."""

    index: str | None = None  # default: the one index the server serves
    query: str | None = None
    image: str | None = None  # base64 or a data: URL
    k: int = Field(default=5, ge=1, le=100)
    thumbnails: bool = True


class ImageGenerationRequest(_Body):
    """OpenAI's image generation request (``b64_json`` responses), with lmforge's
    extensions: ``seed`` (image i starts from the noise of seed + i), ``steps``,
    ``guidance`` and ``sampler``."""

    prompt: str
    model: str | None = None  # default: the one image model the server serves
    n: int = 1
    size: str | None = None  # "WxH"; default and only choice: the model's own side
    response_format: str = "b64_json"
    seed: int | None = None
    steps: int = 25
    guidance: float = 3.0
    sampler: str = "ddim"
    user: str | None = None


class ScoreRequest(_Body):
    """lmforge extension: score with a served scoring model (``--scorer``). A tabular
    model takes one row (an object of feature values) or a list of them; a remaining-useful-
    life model one unit (``{"unit", "readings": [...]}`` or ``{"unit", "reading": {...}}``,
    see ``lmforge.serve.series_scoring``) or a list of them."""

    input: dict[str, Any] | list[dict[str, Any]]
    explain: bool = True  # the top features behind each decision
    top_k: int = Field(default=3, ge=1, le=100)


class ExplainRequest(_Body):
    """lmforge extension: which words made a served classifier decide (LIME or integrated
    gradients), with faithfulness scores."""

    model: str
    input: str
    method: Literal["lime", "ig"] = "lime"
    label: str | None = None
    num_samples: int = Field(default=1000, ge=10, le=20_000)
    steps: int = Field(default=50, ge=2, le=1000)


class KbSearchRequest(_Body):
    """lmforge extension: search a knowledge base."""

    query: str
    k: int = Field(default=5, ge=1, le=100)
    hybrid: bool = False


class SessionCreateRequest(_Body):
    system: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(_Sampling):
    prompt: Prompt
    max_tokens: int | None = Field(default=16, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    suffix: str | None = None

    def prompts(self) -> list[str | list[int]]:
        """The prompt as a list: one entry per prompt in a batch request."""
        prompt: Any = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if prompt and all(isinstance(p, int) for p in prompt):
            return [list(prompt)]
        return list(prompt)


class EngineCompletionRequest(CompletionRequest):
    """``POST /v1/engines/{engine}/completions``: the engine in the path names the model."""

    model: str = ""
