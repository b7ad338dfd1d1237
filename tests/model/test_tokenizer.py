"""Byte-level tokenizer and the M1 chat format."""
import pytest

from m1bench.model.tokenizer import BOS, EOS, format_tool_calls, load_tokenizer


@pytest.fixture(scope="module")
def tok(tiny_dir):
    return load_tokenizer(tiny_dir)


def test_chat_format_is_m1s(tok):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "<think>use the tool</think>",
         "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "name": "weather", "content": "sunny"},
    ]
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    text = tok.render_chat(messages, tools=tools)
    assert text.startswith(f"<begin_of_document>{BOS}system ai_setting=assistant\nBe brief.{EOS}\n"
                           f"{BOS}system tool_setting=tools\nYou are provided with these tools:\n<tools>\n"
                           '{"type": "function", "function": {"name": "weather", "parameters": {}}}\n</tools>')
    assert (f"{BOS}user name=user\nWeather in Paris?{EOS}\n"
            f"{BOS}ai name=assistant\n<think>use the tool</think><tool_calls>\n"
            '{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_calls>' + f"{EOS}\n"
            f"{BOS}tool name=tools\ntool name: weather\ntool result: sunny\n\n{EOS}\n"
            f"{BOS}ai name=assistant\n") in text
    assert text.endswith(f"{BOS}ai name=assistant\n")
    assert not tok.render_chat(messages[:2], add_generation_prompt=False).endswith("assistant\n")


def test_encode_decode_round_trip_and_special_tokens(tok):
    text = tok.render_chat([{"role": "user", "content": "héllo ☃ <think>x</think>"}])
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.encode(BOS) == [tok.tokenizer.token_to_id(BOS)] and tok.encode(EOS) == [tok.eos_token_id]
    assert len(tok.encode("<think>")) == 1
    assert tok.decode(ids, skip_special_tokens=True).count(BOS) == 0


def test_malformed_tool_arguments_are_replayed_verbatim():
    block = format_tool_calls([{"function": {"name": "f", "arguments": "{not json"}}])
    assert block == '<tool_calls>\n{"name": "f", "arguments": "{not json"}\n</tool_calls>'


def test_unknown_role_is_named(tok):
    with pytest.raises(ValueError, match=r"messages\[1\]: unknown role 'robot'"):
        tok.render_chat([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}])
