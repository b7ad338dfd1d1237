"""Tokenizer + M1 chat format.

Real checkpoints bring tokenizer.json and tokenizer_config.json (with the M1 chat template); the tiny
checkpoint gets a byte-level tokenizer built here with the `tokenizers` library, the M1 special
tokens and a chat template that renders the same format:
  <beginning_of_sentence>system ai_setting=assistant\\n…<end_of_sentence>\\n
  <beginning_of_sentence>user name=user\\n…<end_of_sentence>\\n
  <beginning_of_sentence>ai name=assistant\\n…<end_of_sentence>\\n
Reasoning sits inside <think>…</think>; tool calls as <tool_calls>\\n{"name":…,"arguments":…}\\n</tool_calls>.
"""
import json
from pathlib import Path

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from m1bench.harness.core.files import InputError, read_json

BOS, EOS, UNK, BOD = "<beginning_of_sentence>", "<end_of_sentence>", "<end_of_document>", "<begin_of_document>"
SPECIAL_TOKENS = [UNK, BOS, EOS, BOD]
MARKUP_TOKENS = ["<think>", "</think>", "<tool_calls>", "</tool_calls>", "<tools>", "</tools>"]

# Content arrives as a list of parts ({"type": "text", "text": ...}), as the M1 template expects.
CHAT_TEMPLATE = (
    "{{- '" + BOD + "' -}}"
    "{%- set sys = namespace(text='') -%}"
    "{%- for m in messages if m['role'] == 'system' -%}{%- set sys.text = sys.text + m['content'][0]['text'] -%}{%- endfor -%}"
    "{%- if sys.text -%}{{- '" + BOS + "system ai_setting=assistant\\n' + sys.text + '" + EOS + "\\n' -}}{%- endif -%}"
    "{%- if tools -%}{{- '" + BOS + "system tool_setting=tools\\nYou are provided with these tools:\\n<tools>\\n' -}}"
    "{%- for tool in tools -%}{{- tool | tojson -}}{{- '\\n' -}}{%- endfor -%}"
    "{{- '</tools>\\n\\nIf you need to call tools, please respond with <tool_calls></tool_calls> XML tags, and provide "
    "tool-name and json-object of arguments, following the format below:\\n<tool_calls>\\n"
    "{\"name\": <tool-name-1>, \"arguments\": <args-json-object-1>}\\n...\\n</tool_calls>" + EOS + "\\n' -}}"
    "{%- endif -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'user' -%}{{- '" + BOS + "user name=user\\n' + m['content'][0]['text'] + '" + EOS + "\\n' -}}"
    "{%- elif m['role'] == 'assistant' -%}{{- '" + BOS + "ai name=assistant\\n' -}}"
    "{%- for part in m['content'] if part['type'] == 'text' -%}{{- part['text'] -}}{%- endfor -%}{{- '" + EOS + "\\n' -}}"
    "{%- elif m['role'] == 'tool' -%}{{- '" + BOS + "tool name=tools\\n' -}}"
    "{%- for part in m['content'] -%}{{- 'tool name: ' + part['name'] + '\\ntool result: ' + part['text'] + '\\n\\n' -}}{%- endfor -%}"
    "{{- '" + EOS + "\\n' -}}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '" + BOS + "ai name=assistant\\n' -}}{%- endif -%}"
)


def format_tool_calls(tool_calls: list[dict]) -> str:
    """OpenAI-style tool calls -> M1's <tool_calls> block."""
    lines = []
    for call in tool_calls:
        fn = call.get("function", call)
        args = fn.get("arguments", {})
        if isinstance(args, str):  # OpenAI sends JSON text; a malformed call is replayed as the model wrote it
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                pass
        lines.append(json.dumps({"name": fn["name"], "arguments": args}, ensure_ascii=False))
    return "<tool_calls>\n" + "\n".join(lines) + "\n</tool_calls>"


def _as_parts(message: dict) -> dict:
    """OpenAI-style message -> the list-of-parts shape the M1 template reads."""
    content = message.get("content") or ""
    if message["role"] == "tool":
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
        return {"role": "tool", "content": [{"type": "text", "name": message.get("name", "tool"), "text": text}]}
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    if message["role"] == "assistant" and message.get("tool_calls"):
        parts.append({"type": "text", "text": format_tool_calls(message["tool_calls"])})
    return {"role": message["role"], "content": parts or [{"type": "text", "text": ""}]}


class TokenizerError(InputError):
    """A tokenizer file is missing or unreadable, or names an eos token or chat template that does
    not work; the message names the file and the field."""


class ChatTokenizer:
    def __init__(self, tokenizer: Tokenizer, chat_template: str, eos_token: str = EOS, source: str = "<tokenizer>"):
        """`source`: the file chat_template and eos_token came from, for the errors."""
        self.tokenizer = tokenizer
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = lambda x, **_: json.dumps(x, ensure_ascii=False)
        try:
            self.template = env.from_string(chat_template)
        except TemplateSyntaxError as e:
            raise TokenizerError(f"{source}: field 'chat_template' line {e.lineno}: {e.message}") from None
        self.eos_token_id = tokenizer.token_to_id(eos_token)
        if self.eos_token_id is None:
            raise TokenizerError(f"{source}: eos token {eos_token!r} is not in the tokenizer's vocabulary")

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        # Message by message: `tokenizers` holds ~200 bytes per token (offsets, strings, masks) while it
        # encodes one text, ~220 MiB for a 1M-token prompt. Special tokens split the text before any
        # other rule, so encoding the pieces between message starts gives the same ids.
        ids: list[int] = []
        start = 0
        while start < len(text):
            end = text.find(BOS, start + 1)
            end = len(text) if end < 0 else end
            ids.extend(self.tokenizer.encode(text[start:end], add_special_tokens=False).ids)
            start = end
        return ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def render_chat(self, messages: list[dict], tools: list[dict] | None = None,
                    add_generation_prompt: bool = True) -> str:
        for i, m in enumerate(messages):
            if m.get("role") not in ("system", "user", "assistant", "tool"):
                raise ValueError(f"messages[{i}]: unknown role {m.get('role')!r}")
        return self.template.render(messages=[_as_parts(m) for m in messages], tools=tools,
                                    add_generation_prompt=add_generation_prompt)


def load_tokenizer(path) -> ChatTokenizer:
    directory = Path(path)
    tok_file, cfg_file = directory / "tokenizer.json", directory / "tokenizer_config.json"
    if not tok_file.exists():
        raise TokenizerError(f"{tok_file}: missing (m1bench loads tokenizers from tokenizer.json)")
    try:
        tokenizer = Tokenizer.from_file(str(tok_file))
    except Exception as e:  # the tokenizers library raises a bare Exception; its message has the line
        raise TokenizerError(f"{tok_file}: not a tokenizer the tokenizers library reads ({e})") from None
    cfg = read_json(cfg_file, TokenizerError) if cfg_file.exists() else {}
    if not isinstance(cfg, dict):
        raise TokenizerError(f"{cfg_file}: expected a JSON object, got {type(cfg).__name__}")
    eos = cfg.get("eos_token", EOS)
    eos = eos.get("content") if isinstance(eos, dict) else eos
    template = cfg.get("chat_template") or CHAT_TEMPLATE
    if not isinstance(eos, str) or not isinstance(template, str):
        field = "eos_token" if not isinstance(eos, str) else "chat_template"
        raise TokenizerError(f"{cfg_file}: field '{field}' must be a string")
    return ChatTokenizer(tokenizer, template, eos, source=str(cfg_file if cfg_file.exists() else tok_file))


def build_byte_tokenizer(directory) -> Path:
    """A byte-level tokenizer (256 byte tokens, no merges) with M1's special and markup tokens."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in MARKUP_TOKENS])
    tok.save(str(directory / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS, "unk_token": UNK,
              "add_prefix_space": False, "clean_up_tokenization_spaces": False, "model_max_length": 10_240_000,
              "chat_template": CHAT_TEMPLATE}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return directory
