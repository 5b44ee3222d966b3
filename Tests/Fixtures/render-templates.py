#!/usr/bin/env python3
"""Renders llama.cpp's chat templates with Python jinja2, configured the way Hugging Face
transformers' apply_chat_template configures it, and prints the expected outputs as JSON.

usage: python3 render-templates.py <templates-dir> <conversations.json>  > expected.json

Settings (the Swift tests use the same ones):
  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
  globals raise_exception(msg), strftime_now(fmt) with the clock fixed at 2024-07-26T12:00:00
  filter tojson = json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
  variables: messages, add_generation_prompt (tools and documents not given: undefined),
             bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
Output (JSON on stdout):
  cases           every template x conversation x add_generation_prompt (true, false): "expected" text, or
                  "error" when jinja2 raised (then the Swift renderer must fail too; "compile: ..." marks
                  syntax errors)
  extra_cases     the same for EXTRA_CONVERSATIONS below (tools, tool calls, reasoning, list content,
                  documents), with their extra keyword values
  language_cases  LANGUAGE_CASES below: small templates covering the Jinja2 language as chat templates
                  use it, with their context
"""
import datetime
import json
import os
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXED_NOW = datetime.datetime(2024, 7, 26, 12, 0, 0)
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}



# Language cases: small templates exercising the Jinja2 features chat templates use. They are
# rendered here with the same environment; the Swift tests compare (ChatTemplateTests).
# Each: (name, template, context). Context values are JSON-compatible.
CTX = {
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi <there> & 'you'"},
        {"role": "assistant", "content": "Hello!", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Z\u00fcrich", "days": 3}}}]},
        {"role": "tool", "content": "{\"temp\": 21.5}"},
        {"role": "user", "content": "  Thanks \u2014 bye  "},
    ],
    "tools": [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "code_interpreter"},
    ],
    "d": {"b": 2, "a": 1, "C": [1, 2.5, None, True, "x"]},
    "n": 7, "f": 2.5, "s": "Hello World", "empty": "", "items": [3, 1, 2], "nested": [[1, 2], [3, 4]],
    "words": ["banana", "Apple", "cherry", "apple"], "zero": 0, "nothing": None, "yes": True,
}
LANGUAGE_CASES = [
    # whitespace control, trim_blocks / lstrip_blocks, comments, raw
    ("ws-trim-lstrip", "start\n  {% if true %}\n    body\n  {% endif %}\nend\n", {}),
    ("ws-minus", "a  {%- if true -%}  b  {%- endif -%}  c", {}),
    ("ws-var-minus", "x \n {{- 'y' -}} \n z", {}),
    ("ws-plus", "  {%+ if true %}k{% endif +%}\nz", {}),
    ("ws-comment", "a\n  {# note #}\nb {#- tight -#} c", {}),
    ("ws-raw", "{% raw %}{{ not rendered }}{% if %}{% endraw %}!", {}),
    ("ws-trailing-newline", "line\n\n", {}),
    ("ws-crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", {}),
    ("ws-var-no-lstrip", "  {{ 'v' }}\n  {% set x = 1 %}\nq", {}),
    # literals
    ("lit-strings", "{{ 'it\\'s' }}|{{ \"tab\\there\" }}|{{ 'uni\\u00e9\\x41' }}|{{ 'a' 'b' \"c\" }}|{{ 'back\\\\slash' }}|{{ 'keep\\q' }}", {}),
    ("lit-numbers", "{{ 42 }} {{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 3.14 }} {{ 1e3 }} {{ 2.5E-3 }} {{ 1_0.5 }}", {}),
    ("lit-collections", "{{ [1, 'a', none, true, 1.0] }} {{ {'k': 'v', 'n': [1, (2, 3)]} }} {{ (1,) }} {{ () }} {{ [] }} {{ {} }}", {}),
    ("lit-bools", "{{ true }} {{ True }} {{ false }} {{ False }} {{ none }} {{ None }}", {}),
    # arithmetic and operators
    ("ops-arith", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 8 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}", {}),
    ("ops-float-repr", "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1/3 }} {{ 2.0 }} {{ -0.0 }} {{ 123456789.123 }} {{ 1e100 }}", {}),
    ("ops-strings", "{{ 'ab' + 'cd' }} {{ 'x' * 3 }} {{ 3 * 'y' }} {{ [1] + [2, 3] }} {{ [0] * 3 }} {{ 'a' ~ 1 ~ none ~ true ~ 2.0 }}", {}),
    ("ops-unary", "{{ -n }} {{ +f }} {{ not yes }} {{ not empty }} {{ -n|abs }} {{ - 2 ** 2 }}", CTX),
    ("ops-compare", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 2 >= 2 }} {{ 'a' != 'a' }} {{ true == 1 }}", {}),
    ("ops-in", "{{ 'ell' in s }} {{ 'x' not in s }} {{ 2 in items }} {{ 'a' in d }} {{ 'zz' in d }} {{ 1 in [1.0] }} {{ 'a' in ['a', 'b'] }}", CTX),
    ("ops-and-or", "{{ 0 or 'fallback' }} {{ 'first' or 'second' }} {{ 1 and 2 }} {{ 0 and 2 }} {{ none or empty or 'z' }} {{ (empty and 'x') == '' }}", CTX),
    ("ops-condexpr", "{{ 'yes' if n > 5 else 'no' }} {{ 'a' if false else 'b' if true else 'c' }} [{{ 'x' if false }}] {{ (1 if false)|default('dflt') }}", CTX),
    ("ops-concat-binds-tighter-than-plus", "{{ 'a' ~ 1 + 2 }}", {}),
    ("ops-precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ 'a' ~ (1 + 2) }} {{ 1 + 2 ~ 'b' }} {{ items|length - 1 }} {{ not 1 == 2 }} {{ 10 - 2 - 3 }}", CTX),
    # subscripts, slices, attributes
    ("sub-index", "{{ items[0] }} {{ items[-1] }} {{ s[0] }} {{ s[-1] }} {{ nested[1][0] }} {{ d['a'] }} {{ d.b }} {{ messages[1].role }} {{ messages[2]['tool_calls'][0].function.name }}", CTX),
    ("sub-slice", "{{ items[1:] }} {{ items[:-1] }} {{ items[::-1] }} {{ s[::2] }} {{ s[-5:] }} {{ s[3:1] }} {{ items[::-2] }} {{ s[100:] }}", CTX),
    ("sub-missing", "[{{ d.missing }}] [{{ items[10] }}] [{{ d['zz'] }}] {{ d.missing is defined }} {{ items[10] is undefined }} [{{ nothing.attr }}]", CTX),
    ("sub-dict-method-vs-key", "{{ d.items()|list }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dv') }}", CTX),
    ("sub-int-attr", "{{ nested.0 }} {{ nested.1.1 }}", CTX),
    # statements
    ("if-elif-else", "{% for x in [1, 5, 10] %}{% if x < 3 %}small{% elif x < 8 %}mid{% else %}big{% endif %},{% endfor %}", {}),
    ("for-loop-vars", "{% for x in items %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}", CTX),
    ("for-prev-next", "{% for x in items %}[{{ loop.previtem|default('-') }},{{ x }},{{ loop.nextitem|default('-') }}]{% endfor %}", CTX),
    ("for-else", "{% for x in [] %}never{% else %}empty{% endfor %}|{% for x in items if x > 5 %}{{ x }}{% else %}none>5{% endfor %}", CTX),
    ("for-filter", "{% for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }} {% endfor %}", CTX),
    ("for-break-continue", "{% for x in range(10) %}{% if x % 2 == 0 %}{% continue %}{% endif %}{% if x > 6 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("for-unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for a, b in nested %}{{ a + b }},{% endfor %}", CTX),
    ("for-dict-string", "{% for k in d %}{{ k }}{% endfor %}|{% for c in 'abc' %}{{ c }}-{% endfor %}", CTX),
    ("for-nested-loop", "{% for a in [1, 2] %}{% for b in [1, 2] %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }};{% endfor %}", {}),
    ("for-cycle", "{% for x in items %}{{ loop.cycle('odd', 'even') }} {% endfor %}", CTX),
    ("for-changed", "{% for x in [1, 1, 2, 2, 1] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}", {}),
    ("for-recursive", "{% for item in tree recursive %}[{{ item.name }}{% if item.children %}:{{ loop(item.children) }}{% endif %}@{{ loop.depth }}]{% endfor %}",
     {"tree": [{"name": "a", "children": [{"name": "b", "children": []}, {"name": "c", "children": [{"name": "d"}]}]}, {"name": "e"}]}),
    ("for-scope", "{% set y = 5 %}{% for x in [1, 2] %}{{ y }}{% set y = x %}{{ y }}{% endfor %}|{{ y }}|{{ x }}", {}),
    ("for-loop-outside", "[{{ loop }}] {% for x in [1] %}{% endfor %}[{{ x }}]", {}),
    ("for-over-none", "{% for x in nothing %}{{ x }}{% endfor %}", CTX),
    ("for-over-int", "{% for x in n %}{{ x }}{% endfor %}", CTX),
    ("for-over-undefined", "{% for x in undefined_var %}{{ x }}{% else %}no items{% endfor %}", {}),
    ("set-basic", "{% set a = 1 %}{% set b, c = 2, 3 %}{% set t = 4, 5 %}{{ a }}{{ b }}{{ c }}{{ t }}", {}),
    ("set-block", "{% set block %}  inner {{ n }}  {% endset %}[{{ block }}]{% set f | upper | trim %}  shout  {% endset %}[{{ f }}]", CTX),
    ("set-in-if-leaks", "{% if true %}{% set v = 'inside' %}{% endif %}{{ v }}", {}),
    ("set-in-loop-scoped", "{% set count = 0 %}{% for x in items %}{% set count = count + 1 %}{% endfor %}{{ count }}", CTX),
    ("namespace", "{% set ns = namespace(count=0, found=false, items=[]) %}{% for x in items %}{% set ns.count = ns.count + x %}{% if x == 2 %}{% set ns.found = true %}{% endif %}{% set ns.items = ns.items + [x] %}{% endfor %}{{ ns.count }} {{ ns.found }} {{ ns.items }} {{ ns.missing is defined }}", CTX),
    ("namespace-dict-arg", "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}", {}),
    ("set-attr-non-namespace", "{% set d.x = 1 %}", CTX),
    ("with-block", "{% with a = 1, b = 'two' %}{{ a }}{{ b }}{% endwith %}[{{ a }}]", {}),
    ("filter-block", "{% filter upper %}hello {{ 'world' }}{% endfilter %}|{% filter replace('a', 'o') | trim %}  banana  {% endfilter %}", {}),
    ("macro-basic", "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(greeting='Yo', name='Cy') }}", {}),
    ("macro-default-refs-arg", "{% macro m(a, b=a ~ '!') %}{{ a }}{{ b }}{% endmacro %}{{ m('x') }}", {}),
    ("macro-varargs-kwargs", "{% macro m(a) %}{{ a }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }}", {}),
    ("macro-too-many-args", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", {}),
    ("macro-unknown-kwarg", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, z=2) }}", {}),
    ("macro-missing-arg", "{% macro m(a, b) %}[{{ a }}][{{ b }}]{% endmacro %}{{ m(1) }}", {}),
    ("macro-recursive", "{% macro render(v) %}{% if v is mapping %}{{ '{' }}{% for k, x in v.items() %}{{ k }}:{{ render(x) }}{% if not loop.last %},{% endif %}{% endfor %}{{ '}' }}{% elif v is sequence and v is not string %}[{% for x in v %}{{ render(x) }}{% endfor %}]{% else %}{{ v }}{% endif %}{% endmacro %}{{ render(tools[0]) }}", CTX),
    ("macro-scope", "{% macro show() %}{{ g }}{% endmacro %}{% set g = 1 %}{{ show() }}{% set g = 2 %}{{ show() }}{% for g in [9] %}{{ show() }}{% endfor %}", {}),
    ("macro-call-block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ n }}{% endcall %}", CTX),
    ("macro-call-block-args", "{% macro each(xs) %}{% for x in xs %}{{ caller(x, loop.index) }}{% endfor %}{% endmacro %}{% call(item, i) each(items) %}{{ i }}={{ item }};{% endcall %}", CTX),
    ("macro-returns-string", "{% macro m() %}  x  {% endmacro %}[{{ m()|trim }}] {{ m() is string }} {{ m|string|length > 0 }}", {}),
    ("print-stmt", "{% print 'a', 1 + 1 %}", {}),
    # filters
    ("f-trim", "[{{ '  x y  '|trim }}] [{{ 'xxhixx'|trim('x') }}] [{{ s|trim }}] [{{ messages[4].content|trim }}]", CTX),
    ("f-case", "{{ s|upper }} {{ s|lower }} {{ 'hELLO wORLD'|capitalize }} {{ 'hello big-world (x)y'|title }} {{ \"they're bill's\"|title }}", CTX),
    ("f-replace", "{{ s|replace('l', 'L') }} {{ s|replace('l', 'L', 2) }} {{ 'aaa'|replace('', '-') }}", CTX),
    ("f-join", "{{ items|join(', ') }} {{ items|join }} {{ messages|join('|', attribute='role') }} {{ d|join(',') }}", CTX),
    ("f-length", "{{ items|length }} {{ s|length }} {{ d|count }} {{ 'h\u00e9llo'|length }} {{ undefined_var|length }} {{ ''|length }}", CTX),
    ("f-length-generator", "{{ items|select('odd')|length }}", CTX),
    ("f-default", "{{ undefined_var|default('dv') }} {{ undefined_var|d('d2') }} {{ empty|default('e1') }} {{ empty|default('e2', true) }} {{ nothing|default('n1') }} {{ zero|default(5, boolean=true) }}", CTX),
    ("f-first-last", "{{ items|first }} {{ items|last }} {{ s|first }} {{ s|last }} [{{ []|first }}] {{ messages|first|attr('role') if false else (messages|first).role }}", CTX),
    ("f-items-list", "{{ d|items|list }} {{ s|list }} {{ d|list }} {{ undefined_var|items|list }}", CTX),
    ("f-string-int-float", "{{ 42|string ~ '!' }} {{ '42'|int + 1 }} {{ '3.9'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '0x1A'|int(0, 16) }} {{ '2.5'|float * 2 }} {{ 'bad'|float }} {{ true|int }}", {}),
    ("f-abs-round", "{{ -3|abs }} {{ -2.5|abs }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.567|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(0, 'floor') }} {{ 5|round }} {{ 1234.5|round(-2) }}", {}),
    ("f-selectattr", "{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }} {{ messages|rejectattr('role', 'eq', 'user')|map(attribute='role')|join(',') }} {{ messages|selectattr('tool_calls')|list|length }} {{ messages|selectattr('tool_calls', 'defined')|map(attribute='role')|first }}", CTX),
    ("f-select-reject", "{{ [1, 2, 3, 4]|select('even')|list }} {{ [1, 2, 3, 4]|reject('odd')|list }} {{ [0, 1, '', 'a', none]|select|list }} {{ [1, 5, 9]|select('gt', 4)|list }} {{ ['a', 1, 'b']|select('string')|list }}", {}),
    ("f-map", "{{ items|map('string')|join('-') }} {{ words|map('upper')|list }} {{ tools|map(attribute='function.name', default='n/a')|list }} {{ nested|map('first')|list }} {{ messages|map(attribute='role')|unique|list }}", CTX),
    ("f-map-nested-attr", "{{ messages|selectattr('tool_calls', 'defined')|map(attribute='tool_calls.0.function.arguments.city')|first }}", CTX),
    ("f-unique-sort", "{{ words|unique|list }} {{ words|unique(case_sensitive=true)|list }} {{ words|sort }} {{ words|sort(case_sensitive=true) }} {{ words|sort(reverse=true) }} {{ items|sort }} {{ messages|sort(attribute='role')|map(attribute='role')|list }}", CTX),
    ("f-reverse", "{{ items|reverse|list }} {{ s|reverse }} {{ (items|reverse) is iterable }}", CTX),
    ("f-dictsort", "{{ d|dictsort }} {{ d|dictsort(true) }} {{ {'b': 1, 'a': 3}|dictsort(by='value') }} {{ d|dictsort(reverse=true)|first }}", CTX),
    ("f-indent", "[{{ 'a\\nb\\n\\nc'|indent }}] [{{ 'a\\nb'|indent(2, true) }}] [{{ 'a\\n\\nb'|indent(2, blank=true) }}] [{{ 'x\\ny'|indent('> ') }}] [{{ ''|indent(first=true) }}]", {}),
    ("f-wordcount", "{{ 'Hello, big world! 42_x'|wordcount }} {{ ''|wordcount }}", {}),
    ("f-escape-safe", "{{ messages[1].content|e }} {{ messages[1].content|escape }} {{ '<b>'|safe }} {{ ('<i>'|safe) + '<u>' }} {{ '<b>' ~ ('<i>'|safe) }} {{ ('a'|e) is escaped }} {{ 'a' is escaped }}", CTX),
    ("f-min-max-sum", "{{ items|min }} {{ items|max }} {{ items|sum }} {{ words|min }} {{ words|max(case_sensitive=true) }} {{ nested|sum(start=[]) }} {{ []|max is defined }}", CTX),
    ("f-batch-slice", "{{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3, 4, 5]|batch(2, 0)|list }} {{ [1, 2, 3, 4, 5]|slice(2)|list }}", {}),
    ("f-misc", "{{ 'x'|center(7) }}|{{ 'long text here'|truncate(9) }}|{{ '%s-%03d'|format('a', 7) }}|{{ d|attr('b') }}|{{ '<p>a <b>b</b></p>'|striptags }}", CTX),
    ("f-unknown-in-if", "{% if false %}{{ x|no_such_filter }}{% endif %}ok", {}),
    ("f-unknown-in-if-taken", "{% if true %}{{ 'x'|no_such_filter }}{% endif %}", {}),
    ("f-unknown-toplevel", "{{ 'x'|no_such_filter }}", {}),
    ("f-unknown-in-loop-in-if", "{% if false %}{% for x in [1] %}{{ x|no_such_filter }}{% endfor %}{% endif %}", {}),
    ("f-unknown-condexpr", "{{ (x|no_such_filter) if false else 'fine' }}", {}),
    # tojson
    ("json-basic", "{{ d|tojson }} {{ messages[2]|tojson }} {{ 'quote\" back\\\\ nl\\n tab\\t \u00e9 \u2603'|tojson }} {{ none|tojson }} {{ [1.0, 2.50, 1e20, -0.0]|tojson }}", CTX),
    ("json-indent", "{{ tools|tojson(indent=2) }}\n{{ d|tojson(indent=4, sort_keys=true) }}\n{{ []|tojson(indent=2) }}{{ {}|tojson(indent=2) }}", CTX),
    ("json-options", "{{ d|tojson(separators=(',', ':')) }} {{ {'k': '\u00e9\u4e2d\U0001F600'}|tojson(ensure_ascii=true) }} {{ {'k': '\u00e9'}|tojson(ensure_ascii=False) }} {{ d|tojson(sort_keys=True) }}", CTX),
    ("json-control-chars", "{{ '\\x00\\x1f\\x7f\\x08\\x0c'|tojson }}", {}),
    ("json-tuple-markup", "{{ (1, 'a')|tojson }} {{ ('<b>'|safe)|tojson }} {{ {1: 'int key', none: 'n', true: 't'}|tojson }}", {}),
    ("json-undefined", "{{ undefined_var|tojson }}", {}),
    ("json-generator", "{{ items|map('string')|tojson }}", CTX),
    # tests
    ("t-defined", "{{ n is defined }} {{ undefined_var is defined }} {{ undefined_var is undefined }} {{ nothing is none }} {{ nothing is defined }} {{ n is not none }}", CTX),
    ("t-types", "{{ yes is boolean }} {{ n is boolean }} {{ s is string }} {{ n is number }} {{ f is number }} {{ n is integer }} {{ f is integer }} {{ f is float }} {{ yes is integer }} {{ d is mapping }} {{ items is mapping }}", CTX),
    ("t-sequence-iterable", "{{ items is sequence }} {{ s is sequence }} {{ d is sequence }} {{ n is sequence }} {{ items is iterable }} {{ s is iterable }} {{ n is iterable }} {{ nothing is iterable }} {{ undefined_var is iterable }} {{ (items|map('string')) is sequence }}", CTX),
    ("t-callable", "{{ range is callable }} {{ s.upper is callable }} {{ s is callable }} {{ raise_exception is callable }}", CTX),
    ("t-numbers", "{{ 3 is odd }} {{ 3 is even }} {{ 10 is divisibleby 5 }} {{ 10 is divisibleby(3) }} {{ n is eq 7 }} {{ n is equalto 7 }} {{ n is ne 7 }} {{ n is lt 8 }} {{ n is gt 8 }} {{ n is le 7 }} {{ n is ge 8 }} {{ n is greaterthan 1 }} {{ n is lessthan 1 }}", CTX),
    ("t-true-false-in", "{{ yes is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }} {{ 2 is in items }} {{ 'q' is in s }} {{ 'll' is in s }}", CTX),
    ("t-lower-upper-sameas", "{{ 'abc' is lower }} {{ 'Abc' is lower }} {{ 'ABC' is upper }} {{ none is sameas none }} {{ true is sameas true }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ 'nope' is filter }}", {}),
    ("t-unknown-test", "{{ 1 is frobnicated }}", {}),
    # Python methods on strings
    ("m-strip", "[{{ '  a  '.strip() }}] [{{ '  a  '.lstrip() }}] [{{ '  a  '.rstrip() }}] [{{ 'xxaxx'.strip('x') }}] [{{ '\\n\\t a \\u3000'.strip() }}]", {}),
    ("m-split", "{{ 'a,b,,c'.split(',') }} {{ '  a  b  '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a b c'.rsplit(' ', 1) }} {{ 'a\\nb\\r\\nc'.splitlines() }} {{ ''.split() }} {{ ''.split(',') }}", {}),
    ("m-starts-ends", "{{ s.startswith('Hell') }} {{ s.startswith(('x', 'H')) }} {{ s.endswith('ld') }} {{ s.endswith('l', 0, 4) }} {{ s.startswith('') }}", CTX),
    ("m-case", "{{ s.upper() }} {{ s.lower() }} {{ 'hello wORLD'.title() }} {{ 'hello wORLD'.capitalize() }} {{ 'aBc'.swapcase() }} {{ 'stra\u00dfe'.upper() }}", CTX),
    ("m-find-replace", "{{ s.find('o') }} {{ s.rfind('o') }} {{ s.find('zz') }} {{ s.replace('o', '0') }} {{ s.replace('o', '0', 1) }} {{ s.count('l') }} {{ s.index('W') }}", CTX),
    ("m-format", "{{ '{} and {}'.format('a', 'b') }} {{ '{1}{0}'.format('a', 'b') }} {{ '{name}!'.format(name='n') }} {{ '{:>5}|{:<5}|{:^5}'.format('r', 'l', 'c') }} {{ '{:.2f} {:5d} {:05.1f} {:,}'.format(3.14159, 42, 2.5, 1234567) }} {{ '{0[a]} {0.b}'.format(d) }} {{ '{{literal}}'.format() }} {{ '{!r}'.format('q') }}", CTX),
    ("m-join-misc", "{{ ', '.join(['a', 'b']) }} {{ '-'.join(s) }} {{ 'abc'.isalpha() }} {{ '123'.isdigit() }} {{ ' '.isspace() }} {{ 'ab'.isupper() }} {{ 'x'.zfill(3) }} {{ 'ab'.center(6, '*') }} {{ 'a=b=c'.partition('=') }} {{ 'a=b=c'.rpartition('=') }} {{ 'prefix-x'.removeprefix('prefix-') }}", CTX),
    ("m-dict-list", "{{ items.index(2) }} {{ items.count(3) }} {{ d.get('C')[1] }} {{ d.items()|length }} {{ 'b' in d.keys() }} {{ 2 in d.values() }} {{ d.keys() }} {{ d.items() }}", CTX),
    ("m-list-append-sandboxed", "{% set l = [1] %}{% set _ = l.append(2) %}{{ l }}", {}),
    ("m-list-pop-sandboxed", "{% set l = [1, 2] %}{{ l.pop(0) }}", {}),
    ("m-dict-update-sandboxed", "{% set x = {} %}{{ x.update({'a': 1}) }}", {}),
    ("m-unsafe-attr-defined", "{{ items.append is defined }} {{ s.__class__ is defined }}", CTX),
    ("m-private-attr", "{{ s.__class__ }}", CTX),
    # undefined semantics
    ("u-print", "[{{ undefined_var }}] [{{ undefined_var ~ 'x' }}] {{ undefined_var|string|length }} {{ not undefined_var }} {{ undefined_var == undefined_var }} {{ undefined_var != 1 }} {{ 'a' in undefined_var }}", {}),
    ("u-attr-error", "{{ undefined_var.attr }}", {}),
    ("u-attr-defined-error", "{{ undefined_var.attr is defined }}", {}),
    ("u-item-error", "{{ undefined_var['k'] }}", {}),
    ("u-arith-error", "{{ undefined_var + 1 }}", {}),
    ("u-call-error", "{{ undefined_var() }}", {}),
    ("u-compare-error", "{{ undefined_var < 1 }}", {}),
    ("u-missing-key-then-attr", "{{ d.missing.deeper }}", CTX),
    ("u-missing-key-ok", "{{ d.missing|default('dv') }} {{ (d.missing or 'or') }} {{ d.missing is none }}", CTX),
    ("u-method-on-undefined", "{{ undefined_var.strip() }}", {}),
    ("u-in-if", "{% if undefined_var %}t{% else %}f{% endif %}{% if undefined_var is defined and undefined_var.x %}bad{% endif %}", {}),
    # type errors
    ("e-str-plus-int", "{{ 'a' + 1 }}", {}),
    ("e-none-plus", "{{ nothing + 1 }}", CTX),
    ("e-div-zero", "{{ 1 / 0 }}", {}),
    ("e-compare-none", "{{ nothing < 1 }}", CTX),
    ("e-call-string", "{{ s() }}", CTX),
    ("e-unpack", "{% set a, b = [1, 2, 3] %}", {}),
    # globals
    ("g-range", "{{ range(3)|list }} {{ range(1, 4)|list }} {{ range(10, 0, -3)|list }} {{ range(0)|list }} {% for i in range(messages|length - 1, -1, -1) %}{{ i }}{% endfor %}", CTX),
    ("g-dict", "{{ dict(a=1, b='x') }} {{ dict([('k', 'v')]) }}", {}),
    ("g-cycler-joiner", "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{{ c.current }} {% set j = joiner('|') %}{% for x in items %}{{ j() }}{{ x }}{% endfor %}", CTX),
    ("g-raise", "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}", CTX),
    ("g-strftime", "{{ strftime_now('%Y-%m-%d') }} {{ strftime_now('%d %b %Y') }} {{ strftime_now('%B %d, %Y') }} {{ strftime_now('%A %H:%M:%S %p %j %y %I') }} {{ strftime_now('%-d/%-m %e|%%') }}", {}),
    # str() of values
    ("str-values", "{{ d }} {{ messages[2] }} {{ [none, true, 'it\\'s', 'q\"', 'both\\'\"'] }} {{ ('a',) }} {{ nested }} {{ 'tab\\there'|list }} {{ d.items()|list|first }}", CTX),
    ("str-escapes-repr", "{{ ['\\n', '\\\\', '\\x01', '\u00e9', '\u200b'] }}", {}),
    ("percent-format", "{{ '%s is %d years' % ('Ann', 30) }} {{ '%5.1f|%-4d|%x|%r' % (3.14159, 7, 255, 'q') }} {{ '%(a)s-%(b)s' % {'a': 1, 'b': 2} }} {{ '100%%' % () }} {{ '%s' % [1, 2] }}", {}),
    # more edge cases
    ("fmt-spec", "{{ '{:08.3f}|{:+d}|{:x}|{:e}|{:%}|{:g}|{}|{:.3}|{:10.3f}|{:*^9}|{:>6.2%}'.format(-3.14159, 5, 255, 12345.678, 0.25, 0.0001, 1.0, 3.14159, 2.5, 'mid', 0.5) }}", {}),
    ("fmt-filter", "{{ '%.2f'|format(3.14159) }} {{ '%s=%s'|format('k', 'v') }} {{ '%(x)s'|format(x=1) }} {{ '%s' % none }} {{ '%d%%' % 50 }} {{ '%5s|%-5s|' % ('r', 'l') }} {{ '%c%c' % (72, 'i') }} {{ '%e' % 1234.5 }} {{ '%g' % 0.00001 }} {{ '%+.1f' % 2 }} {{ '%o' % 8 }} {{ '%i' % 3.9 }}", {}),
    ("num-filters", "{{ 1.5|string }} {{ 10|float }} {{ 3.0|int }} {{ -7 // 2.0 }} {{ 2 ** 0.5 }} {{ 10 % 3.5 }} {{ 1e308 * 10 }} {{ -1e308 * 10 }} {{ true + 1 }} {{ 3|string|length }} {{ 7 / 7 }}", {}),
    ("div-by-zero-test", "{{ 5 is divisibleby 0 }}", {}),
    ("cmp-misc", "{{ 'abc' < 'abd' }} {{ [1, 'a'] == [1, 'a'] }} {{ {'a': 1} == {'a': 1} }} {{ (1, 2) == [1, 2] }} {{ '\u00e9' < 'z' }} {{ 'B' < 'a' }} {{ [1, 2] < [1, 2, 0] }} {{ none == none }} {{ none != false }} {{ 0 == false }} {{ '' == none }}", {}),
    ("cmp-mixed-error", "{{ 'a' < 1 }}", {}),
    ("cmp-list-error", "{{ [1] < ['a'] }}", {}),
    ("ws-tabs", "\t{% if true %}\n\tA\n\t{% endif %}\n \t {% set x = 1 %}\nB", {}),
    ("ws-inline-tag-no-lstrip", "a {% if true %}b{% endif %} c\n  x {% if true %}\ny{% endif %}", {}),
    ("ws-multi-tags-line", "{% if true %}{% if true %}\nboth\n{% endif %}{% endif %}\nafter", {}),
    ("ws-raw-minus", "a  {%- raw -%}  x {{ y }}  {%- endraw -%}  b", {}),
    ("ws-comment-with-tags", "{# {{ not }} {% if %} #}ok{#\nmulti\nline\n#}\n!", {}),
    ("ws-strings-with-delims", "{{ '%}' }}{{ \"}}\" }}{{ '{{' }}{{ '{#' }}{% set x = '%}' %}{{ x }}", {}),
    ("ws-block-at-eof", "x\n{% if true %}\ny\n{% endif %}\n", {}),
    ("ws-macro-trim", "{% macro m() -%}\n  x\n{%- endmacro %}[{{ m() }}]", {}),
    ("ws-realistic", "{%- for message in messages %}\n    {%- if message.role == 'user' %}\n        {{- '<|user|>\\n' + message.content + '\\n' }}\n    {%- elif message.role == 'assistant' %}\n        {{- '<|assistant|>\\n' }}{{- message.content }}\n    {%- endif %}\n{%- endfor %}", CTX),
    ("ws-realistic-2", "{%- for message in messages %}\n    {%- if message.role == 'user' %}\n        {{- '<|user|>\\n' + message.content + '\\n' }}\n    {%- elif message.role == 'assistant' %}\n        {{- '<|assistant|>\\n' + message.content }}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|assistant|>\\n' }}\n{%- endif %}\n", {**CTX, "add_generation_prompt": True}),
    ("trailing-commas", "{{ {'a': 1,} }} {{ [1, 2,] }} {{ (1, 2,) }} {{ range(3,)|list }}", {}),
    ("chat-idioms", "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set sys = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% endif %}{{ loop_messages|length }}|{{ sys }}|{{ (messages|selectattr('role', 'eq', 'user')|list)[-1].content|trim }}|{{ messages|map(attribute='content')|map('length')|sum }}|{{ (messages|last).content.split('\u2014')[-1].lstrip(' ') }}|{{ messages[2].content.split('</think>')[-1].lstrip('\\n') }}", CTX),
    ("chat-tool-args", "{% for tc in messages[2].tool_calls %}{{ tc.function.name }}({% for k, v in tc.function.arguments.items() %}{{ k }}={{ v|tojson }}{% if not loop.last %}, {% endif %}{% endfor %}){% endfor %} {{ tools is not none and tools|length > 0 }} {{ tools|selectattr('type', 'equalto', 'code_interpreter')|list|length > 0 }}", CTX),
    ("chat-content-types", "{% for m in msgs %}{% if m.content is string %}S:{{ m.content }}{% elif m.content is iterable %}{% for p in m.content %}{% if p.type == 'text' %}T:{{ p.text }}{% elif p['type'] == 'image' %}<img>{% endif %}{% endfor %}{% endif %};{% endfor %}", {"msgs": [{"content": "plain"}, {"content": [{"type": "text", "text": "a"}, {"type": "image"}]}, {"content": None}]}),
    ("misc-filters-2", "{{ [3, 1]|sort|first }} {{ ['a', 'b']|map('upper')|join }} {{ [1, 2, 3]|select('in', [2, 3])|list }} {{ items|map('int')|select('gt', 1)|list|length }} {{ none|default('x') }} {{ none|trim }} {{ 3|trim }} {{ d.C[4] }} {{ d['C'][1:3] }} {{ {'a': none}|tojson }} {{ range(3)|list|tojson }} {{ 'x' ~ [1] }}", CTX),
    ("misc-none-length", "{{ none|length }}", {}),
    ("misc-index-types", "[{{ items[1.5] }}] [{{ items['x'] }}] [{{ s.nonexistent }}] {{ 'A'|lower in ['a'] }} {{ 'aaa'.count('a') }} {{ '  '.strip() == '' }}", CTX),
    ("misc-method-missing", "{{ s.nonexistent() }}", CTX),
    ("namespace-list", "{% set x = namespace() %}{% set x.a = [] %}{% for i in range(3) %}{% set x.a = x.a + [i] %}{% endfor %}{{ x.a }} {{ x }}", {}),
    ("loop-outer", "{% for a in [1, 2] %}{% set outer = loop %}{% for b in [3] %}{{ outer.index }}{{ loop.index }}{{ b }} {% endfor %}{% endfor %}", {}),
    ("loop-length-filtered", "{% for m in messages if m.role == 'user' %}{{ loop.length }}{{ loop.last }}{% endfor %}", CTX),
    ("caller-missing", "{% macro m() %}{{ caller() }}{% endmacro %}{{ m() }}", {}),
    ("macro-positional-and-kw", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, a=2) }}", {}),
    ("dyn-args", "{% macro m(a, b) %}{{ a }}-{{ b }}{% endmacro %}{{ m(*[1, 2]) }} {{ m(**{'a': 3, 'b': 4}) }} {{ items|join(*[', ']) }}", CTX),
    ("strftime-more", "{{ strftime_now('%c|%x|%X|%H:%M|%U|%W|%w|%u|%D|%F|%T|%R|%C|%h') }}", {}),
    ("string-unicode-ops", "{{ '\u00e9t\u00e9'|upper }} {{ '\U0001F600x'|length }} {{ '\U0001F600x'[1] }} {{ '\u00e9t\u00e9'[::-1] }} {{ 'a\u0301'|length }} {{ 'abc'|center(8) }}|", {}),
    ("test-none-default-chain", "{{ nothing is none }} {{ nothing is not defined }} {{ (nothing or d).a }} {{ d.b if d.b is defined else 0 }} {{ d['missing'] is not defined }}", CTX),
    ("if-tuple-test", "{% if 1, 2 %}tuple is truthy{% endif %}", {}),
    ("set-tuple-swap", "{% set a, b = 1, 2 %}{% set a, b = b, a %}{{ a }}{{ b }}", {}),
    ("autoescape-block", "{% autoescape true %}{{ '<b>' }}{{ '<i>'|safe }}{% endautoescape %}{{ '<u>' }}", {}),
    ("block-tag", "a{% block content %}B{{ n }}{% endblock %}c", CTX),
    ("include-fails", "{% include 'other.jinja' %}", {}),
    # syntax errors
    ("syn-unknown-tag", "{% generation %}x{% endgeneration %}", {}),
    ("syn-unclosed-if", "{% if true %}x", {}),
    ("syn-unclosed-for", "a\n{% for x in y %}\n{{ x }}", {}),
    ("syn-bad-expr", "{{ 1 + }}", {}),
    ("syn-unclosed-var", "{{ x ", {}),
    ("syn-unclosed-comment", "{# x ", {}),
    ("syn-unbalanced", "{{ (1 + 2 }}", {}),
    ("syn-stray-end", "{% endif %}", {}),
    ("syn-break-outside-loop", "{% break %}", {}),
    ("syn-extends", "{% extends 'base.html' %}", {}),
]



# Extra conversations (ours): tools, tool calls and results, reasoning, list content, documents.
# Every template is rendered with each, with and without the generation prompt, and extra
# keyword values given as apply_chat_template would pass them.
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}}
EXTRA_CONVERSATIONS = [
    {"name": "tool-call", "kwargs": {"tools": [WEATHER_TOOL]}, "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temperature\": 21, \"sky\": \"clear\"}"},
        {"role": "assistant", "content": "It is 21 \u00b0C and clear in Paris."},
        {"role": "user", "content": "Thanks!"}]},
    {"name": "json-string-arguments", "kwargs": {"tools": [WEATHER_TOOL]}, "messages": [
        {"role": "user", "content": "Weather in Z\u00fcrich?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Z\u00fcrich\"}"}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny"}]},
    {"name": "reasoning", "kwargs": {"enable_thinking": False}, "messages": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4", "reasoning_content": "2 plus 2 is 4."},
        {"role": "user", "content": "And 3+3?"}]},
    {"name": "list-content-documents", "kwargs": {"documents": [{"title": "Edge", "text": "Edge computing runs code near users."}]}, "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "Summarize the document."}, {"type": "text", "text": "One line."}]}]},
]


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return FIXED_NOW.strftime(fmt)


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: render-templates.py <templates-dir> <conversations.json>")
    tdir, conv_path = sys.argv[1], sys.argv[2]
    with open(conv_path, encoding="utf-8") as f:
        conversations = json.load(f)
    env = make_env()
    cases = []
    extra_cases = []
    for name in sorted(os.listdir(tdir)):
        if not name.endswith(".jinja"):
            continue
        with open(os.path.join(tdir, name), encoding="utf-8") as f:
            source = f.read()
        try:
            template = env.from_string(source)
            compile_error = None
        except Exception as e:  # syntax errors: every case of this template is an expected failure
            template, compile_error = None, "compile: %s: %s" % (type(e).__name__, e)
        for ci, conv in enumerate(conversations):
            for agp in (True, False):
                case = {"template": name, "conversation": ci, "add_generation_prompt": agp}
                if template is None:
                    case["error"] = compile_error
                else:
                    try:
                        case["expected"] = template.render(
                            messages=conv["messages"], add_generation_prompt=agp, **SPECIAL_TOKENS)
                    except Exception as e:
                        case["error"] = "%s: %s" % (type(e).__name__, e)
                cases.append(case)
        for conv in EXTRA_CONVERSATIONS:
            for agp in (True, False):
                case = {"template": name, "conversation": conv["name"], "add_generation_prompt": agp}
                if template is None:
                    case["error"] = compile_error
                else:
                    try:
                        case["expected"] = template.render(
                            messages=conv["messages"], add_generation_prompt=agp,
                            **{**SPECIAL_TOKENS, **conv["kwargs"]})
                    except Exception as e:
                        case["error"] = "%s: %s" % (type(e).__name__, e)
                extra_cases.append(case)
    language = []
    for name, source, ctx in LANGUAGE_CASES:
        case = {"name": name, "template": source, "context": ctx}
        try:
            template = env.from_string(source)
        except Exception as e:
            case["error"] = "compile: %s: %s" % (type(e).__name__, e)
        else:
            try:
                case["expected"] = template.render(**ctx)
            except Exception as e:
                case["error"] = "%s: %s" % (type(e).__name__, e)
        language.append(case)
    out = {
        "renderer": "jinja2 %s configured like transformers apply_chat_template; bos_token=<s> eos_token=</s> "
                    "unk_token=<unk> pad_token=<pad>; no tools/documents; strftime_now fixed at %s"
                    % (jinja2.__version__, FIXED_NOW.isoformat()),
        "fixed_now": FIXED_NOW.isoformat(),
        "special_tokens": SPECIAL_TOKENS,
        "conversations": conversations,
        "cases": cases,
        "extra_conversations": EXTRA_CONVERSATIONS,
        "extra_cases": extra_cases,
        "language_cases": language,
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
