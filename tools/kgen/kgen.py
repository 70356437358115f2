#!/usr/bin/env python3
"""kgen: C codecs for Kafka messages, generated from Apache Kafka's JSON message specs.

Usage: kgen.py --out DIR SPEC_DIR

For every SPEC_DIR/<Name>.json it writes DIR/msg_<Name>.c; it also writes DIR/kp_msgs.h (all
structs and prototypes) and DIR/kp_api_table.c (the per-api-key table). Files whose content
did not change are not rewritten.

What is generated, per message (request, response, header or data) named e.g. MetadataResponse:

  typedef struct kp_metadata_response {...} kp_metadata_response;
  typedef struct kp_metadata_response_metadata_response_broker {...} ...;   nested/common structs
  void kp_metadata_response_init(kp_metadata_response *m);                 JSON defaults
  int  kp_metadata_response_decode(kp_reader *r, kp_arena *a, int16_t version, kp_metadata_response *out);
  void kp_metadata_response_encode(kp_writer *w, int16_t version, const kp_metadata_response *in);
  void kp_metadata_response_random(kp_arena *a, uint64_t *rng, int16_t version, kp_metadata_response *out);
  extern const kp_msg_codec kp_metadata_response_codec;                     type-erased entry points

Header messages (RequestHeader, ResponseHeader) get a `_data` suffix (kp_request_header_data) so
they do not collide with the hand-written frame types in proto/kp_frame.h.

C representation of field types:
  bool/int8/int16/uint16/int32/uint32/int64/float64 -> bool/int8_t/.../double
  uuid -> kp_uuid; string -> kp_str; bytes, records -> kp_bytes (zero-copy slices, len -1 = null)
  []T -> struct { int32_t count; T *items; }  (count -1 = null array)
  struct -> embedded by value; a nullable struct field is a pointer (NULL = null, marker byte on
  the wire: -1 null, 1 present)
Every struct of a message with flexible versions has `kp_tagged *unknown_tags` (unknown tagged
fields, re-encoded in tag order merged with the known ones).

Tagged fields: each gets `bool has_<field>`. Decoding sets it when the field was on the wire.
Encoding writes the field when has_<field> is set OR its value differs from the JSON default
(the Java rule), so fields a peer sent explicitly survive a decode/encode round trip byte for
byte, and code that just sets a value does not need to know about the flag.

Fields outside the version being encoded: an ignorable one is skipped; a non-ignorable one
holding a non-default value makes the writer fail with KP_ERR_VERSION (Java throws). Struct
valued fields are compared with their default recursively.
"""

import argparse
import json
import os
import re
import sys

MAX_VERSION = 0x7FFF

C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
    "typedef", "union", "unsigned", "void", "volatile", "while", "bool", "true", "false",
}

PRIMITIVES = {
    # type: (C type, read fn, write fn, random fn, minimum encoded size)
    "bool": ("bool", "kp_read_bool", "kp_write_bool", "kp_rand_bool", 1),
    "int8": ("int8_t", "kp_read_i8", "kp_write_i8", "kp_rand_i8", 1),
    "int16": ("int16_t", "kp_read_i16", "kp_write_i16", "kp_rand_i16", 2),
    "uint16": ("uint16_t", "kp_read_u16", "kp_write_u16", "kp_rand_u16", 2),
    "int32": ("int32_t", "kp_read_i32", "kp_write_i32", "kp_rand_i32", 4),
    "uint32": ("uint32_t", "kp_read_u32", "kp_write_u32", "kp_rand_u32", 4),
    "int64": ("int64_t", "kp_read_i64", "kp_write_i64", "kp_rand_i64", 8),
    "float64": ("double", "kp_read_f64", "kp_write_f64", "kp_rand_f64", 8),
    "uuid": ("kp_uuid", "kp_read_uuid", "kp_write_uuid", "kp_rand_uuid", 16),
    "string": ("kp_str", None, None, None, 1),
    "bytes": ("kp_bytes", None, None, None, 1),
    "records": ("kp_bytes", None, None, None, 1),
}
INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "uint16": (0, (1 << 16) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "uint32": (0, (1 << 32) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
}

LISTENER_BITS = {"zkBroker": "KP_LISTENER_ZK_BROKER", "broker": "KP_LISTENER_BROKER",
                 "controller": "KP_LISTENER_CONTROLLER"}


class SpecError(Exception):
    pass


# ---- spec model --------------------------------------------------------------------------


def strip_comments(text):
    """Removes // comments outside JSON strings."""
    out = []
    i, n = 0, len(text)
    in_str = False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            out.append(c)
        elif c == "/" and text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def snake(name):
    name = name.replace("KRaft", "Kraft")
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


class Versions:
    """An inclusive version range; empty when lo > hi."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    @staticmethod
    def parse(text):
        text = str(text).strip()
        if text == "none":
            return Versions(1, 0)
        if text.endswith("+"):
            return Versions(int(text[:-1]), MAX_VERSION)
        if "-" in text:
            lo, hi = text.split("-")
            return Versions(int(lo), int(hi))
        return Versions(int(text), int(text))

    def empty(self):
        return self.lo > self.hi

    def intersect(self, other):
        return Versions(max(self.lo, other.lo), min(self.hi, other.hi))

    def contains(self, v):
        return self.lo <= v <= self.hi

    def __str__(self):
        if self.empty():
            return "none"
        if self.hi == MAX_VERSION:
            return "%d+" % self.lo
        if self.lo == self.hi:
            return str(self.lo)
        return "%d-%d" % (self.lo, self.hi)


class Field:
    def __init__(self, spec, where):
        self.name = spec["name"]
        self.cname = snake(self.name)
        if self.cname in C_KEYWORDS:
            self.cname += "_"
        self.type = spec["type"]
        self.versions = Versions.parse(spec.get("versions", "none"))
        self.nullable = Versions.parse(spec.get("nullableVersions", "none"))
        self.tagged = Versions.parse(spec.get("taggedVersions", "none"))
        self.tag = int(spec["tag"]) if "tag" in spec else None
        self.ignorable = bool(spec.get("ignorable", False))
        self.default = spec.get("default")
        self.flexible_override = (Versions.parse(spec["flexibleVersions"])
                                  if "flexibleVersions" in spec else None)
        self.is_array = self.type.startswith("[]")
        self.elem = self.type[2:] if self.is_array else self.type
        self.struct = None  # resolved Struct when elem is a struct type
        self.nested_spec = spec.get("fields")
        if self.elem not in PRIMITIVES and not self.elem[:1].isupper():
            raise SpecError("%s: unknown type %s" % (where, self.type))
        if self.tag is not None:
            if self.tagged.empty():
                raise SpecError("%s: tag without taggedVersions" % where)
            if (self.tagged.lo, self.tagged.hi) != (self.versions.lo, self.versions.hi):
                raise SpecError("%s: taggedVersions must equal versions" % where)

    @property
    def is_struct(self):
        return self.elem not in PRIMITIVES

    @property
    def is_struct_pointer(self):
        """Non-array struct fields that can be null are pointers."""
        return self.is_struct and not self.is_array and not self.nullable.empty()

    @property
    def is_tagged(self):
        return self.tag is not None


class Struct:
    def __init__(self, name, cname, fields):
        self.name = name
        self.cname = cname
        self.fields = fields
        self.needs_is_default = False

    def tagged_fields(self):
        return sorted((f for f in self.fields if f.is_tagged), key=lambda f: f.tag)


class Message:
    def __init__(self, path):
        with open(path, encoding="utf-8") as fh:
            spec = json.loads(strip_comments(fh.read()))
        self.file_base = os.path.splitext(os.path.basename(path))[0]
        self.name = spec["name"]
        self.kind = spec["type"]
        self.api_key = spec.get("apiKey")
        self.valid = Versions.parse(spec["validVersions"])
        self.flexible = Versions.parse(spec.get("flexibleVersions", "none"))
        self.listeners = spec.get("listeners", [])
        self.unstable = bool(spec.get("latestVersionUnstable", False))
        self.cname = "kp_" + snake(self.name) + ("_data" if self.kind == "header" else "")
        self.structs = {}  # JSON struct name -> Struct
        for common in spec.get("commonStructs", []):
            self._add_struct(common["name"], common["fields"])
        self.top = Struct(self.name, self.cname, self._fields(spec["fields"]))
        self._resolve(self.top)
        for s in list(self.structs.values()):
            self._resolve(s)
        self.ordered = self._order()

    def _fields(self, specs):
        fields = []
        for fs in specs:
            f = Field(fs, "%s.%s" % (self.name, fs.get("name")))
            if f.is_struct and f.nested_spec is not None:
                self._add_struct(f.elem, f.nested_spec)
            fields.append(f)
        return fields

    def _add_struct(self, name, field_specs):
        if name in self.structs:
            raise SpecError("%s: struct %s defined twice" % (self.name, name))
        cname = "%s_%s" % (self.cname, snake(name))
        # Reserve the slot before recursing so nested names are checked against it.
        self.structs[name] = None
        self.structs[name] = Struct(name, cname, self._fields(field_specs))

    def _resolve(self, struct):
        for f in struct.fields:
            if f.is_struct:
                if f.elem not in self.structs:
                    raise SpecError("%s: unknown struct type %s" % (self.name, f.elem))
                f.struct = self.structs[f.elem]
                if f.is_struct_pointer and str(f.default).lower() != "null":
                    raise SpecError("%s.%s: nullable struct needs default null" %
                                    (self.name, f.name))

    def _order(self):
        """Structs with the ones they embed first (the top struct last)."""
        done, order = set(), []

        def visit(s):
            if s.name in done:
                return
            done.add(s.name)
            for f in s.fields:
                if f.struct:
                    visit(f.struct)
            order.append(s)

        for s in self.structs.values():
            visit(s)
        visit(self.top)
        return order

    def all_structs(self):
        return self.ordered

    @property
    def short_name(self):
        for suffix in ("Request", "Response"):
            if self.name.endswith(suffix):
                return self.name[: -len(suffix)]
        return self.name


# ---- C expressions -----------------------------------------------------------------------


def vcond(vs, msg):
    """A C condition on `version` for the range vs, simplified within the message's versions."""
    lo, hi = max(vs.lo, msg.valid.lo), min(vs.hi, msg.valid.hi)
    if lo > hi:
        return "0"
    parts = []
    if lo > msg.valid.lo:
        parts.append("version >= %d" % lo)
    if hi < msg.valid.hi:
        parts.append("version <= %d" % hi)
    if not parts:
        return "1"
    if len(parts) == 2 and lo == hi:
        return "version == %d" % lo
    return " && ".join(parts)


def c_and(a, b):
    if a == "0" or b == "0":
        return "0"
    if a == "1":
        return b
    if b == "1":
        return a
    return "(%s) && (%s)" % (a, b)


def int_literal(ctype_name, value):
    lo, hi = INT_RANGES[ctype_name]
    if not lo <= value <= hi:
        raise SpecError("default %d out of range for %s" % (value, ctype_name))
    if ctype_name == "int64":
        if value == lo:
            return "INT64_MIN"
        return "INT64_C(%d)" % value
    if ctype_name == "int32" and value == lo:
        return "INT32_MIN"
    if ctype_name == "uint32":
        return "%dU" % value
    return str(value)


def parse_int_default(raw):
    text = str(raw).strip()
    return int(text, 16) if text.lower().startswith(("0x", "-0x")) else int(text)


def c_string_literal(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Default:
    """The JSON default of a field as C: `literal` for scalars, or a kind for slices/arrays."""

    def __init__(self, f):
        raw = f.default
        self.is_null = raw is not None and str(raw).lower() == "null"
        if self.is_null and f.nullable.empty() and not f.is_array:
            raise SpecError("field %s: default null but not nullable" % f.name)
        self.literal = None
        self.text = None
        if f.is_array or f.is_struct:
            return
        t = f.elem
        if t in INT_RANGES:
            self.literal = int_literal(t, parse_int_default(raw) if raw not in (None, "") else 0)
        elif t == "bool":
            self.literal = "true" if str(raw).lower() == "true" else "false"
        elif t == "float64":
            self.literal = repr(float(raw)) if raw not in (None, "") else "0.0"
        elif t == "string":
            self.text = "" if raw is None or self.is_null else str(raw)
        elif t in ("bytes", "records", "uuid"):
            if raw not in (None, "") and not self.is_null:
                raise SpecError("field %s: unsupported default %r" % (f.name, raw))

    def nonzero_scalar(self):
        return self.literal not in (None, "0", "false", "0.0", "0U", "INT64_C(0)")


def non_default_expr(f, v):
    """C expression: value v of field f differs from its default."""
    d = Default(f)
    if f.is_array:
        return "%s.count >= 0" % v if d.is_null else "%s.count != 0" % v
    if f.is_struct_pointer:
        return "%s != NULL" % v
    if f.is_struct:
        f.struct.needs_is_default = True
        return "!%s_is_default(&%s)" % (f.struct.cname, v)
    t = f.elem
    if t == "string":
        if d.is_null:
            return "%s.len >= 0" % v
        if d.text == "":
            return "%s.len != 0" % v
        return "!kp_str_eq_c(%s, %s)" % (v, c_string_literal(d.text))
    if t in ("bytes", "records"):
        return "%s.len >= 0" % v if d.is_null else "%s.len != 0" % v
    if t == "uuid":
        return "!kp_uuid_is_zero(&%s)" % v
    return "%s != %s" % (v, d.literal)


def value_min_size(f, msg, v):
    """Fewest bytes one non-array value of field f takes on the wire at version v."""
    flexible = msg.flexible.contains(v)
    if f.flexible_override is not None:
        flexible = f.flexible_override.contains(v)
    if f.is_struct:
        if f.is_struct_pointer and f.nullable.contains(v):
            return 1  # the null marker alone
        return struct_min_size(f.struct, msg, v)
    if f.elem == "string":
        return 1 if flexible else 2
    if f.elem in ("bytes", "records"):
        return 1 if flexible else 4
    return PRIMITIVES[f.elem][4]


def struct_min_size(s, msg, v):
    size = 1 if msg.flexible.contains(v) else 0  # tagged-field count
    for g in s.fields:
        if g.is_tagged or not g.versions.contains(v):
            continue
        if g.is_array:
            size += 1 if msg.flexible.contains(v) else 4
        else:
            size += value_min_size(g, msg, v)
    return size


def min_elem_size(f, msg):
    """A lower bound on the encoded size of one element of array field f at any version the
    array exists in: the decoder refuses counts the remaining bytes cannot hold, so a hostile
    count can only allocate in proportion to the input."""
    present = f.versions.intersect(msg.valid)
    return min((value_min_size(f, msg, v) for v in range(present.lo, present.hi + 1)), default=1)


# ---- code emission -----------------------------------------------------------------------


def emit_if(e, cond, stmt, else_stmt):
    """Emits `if (cond) stmt; else else_stmt;`, folding constant conditions."""
    if cond == "1":
        e(stmt)
    elif cond == "0":
        if else_stmt:
            e(else_stmt)
    else:
        e("if (%s)" % cond)
        e("    " + stmt)
        if else_stmt:
            e("else")
            e("    " + else_stmt)


class Emitter:
    def __init__(self):
        self.lines = []
        self.level = 0

    def __call__(self, line=""):
        if line.startswith("}"):
            self.level -= 1
        self.lines.append(("    " * self.level + line) if line else "")
        if line.endswith("{"):
            self.level += 1

    def text(self):
        return "\n".join(self.lines) + "\n"


def c_field_type(f):
    if f.is_struct:
        base = f.struct.cname
    else:
        base = PRIMITIVES[f.elem][0]
    if f.is_array:
        return "struct { int32_t count; %s *items; } " % base
    if f.is_struct_pointer:
        return base + " *"
    return base + " "


def field_comment(f):
    parts = ["v" + str(f.versions)]
    if not f.nullable.empty():
        parts.append("nullable v%s" % f.nullable)
    if f.is_tagged:
        parts.append("tag %d" % f.tag)
    if f.ignorable:
        parts.append("ignorable")
    if f.default is not None:
        parts.append("default %s" % f.default)
    return ", ".join(parts)


def emit_struct_decl(e, msg, s):
    e("typedef struct %s {" % s.cname)
    for f in s.fields:
        e("%s%s; /* %s */" % (c_field_type(f), f.cname, field_comment(f)))
        if f.is_tagged:
            e("bool has_%s; /* was on the wire / must be written even if default */" % f.cname)
    if not msg.flexible.empty():
        e("kp_tagged *unknown_tags;")
    e("} %s;" % s.cname)
    e()


class StructGen:
    """Emits init / is_default / read / write / fill for one struct of one message."""

    def __init__(self, msg, s, e):
        self.msg, self.s, self.e = msg, s, e
        self.flex = vcond(msg.flexible, msg)

    def field_flex(self, f):
        if f.flexible_override is not None:
            return vcond(f.flexible_override, self.msg)
        return self.flex

    def present(self, f):
        return vcond(f.tagged if f.is_tagged else f.versions, self.msg)

    def linkage(self):
        return "" if self.s is self.msg.top else "static "

    # -- init / is_default --

    def gen_init(self):
        e, s = self.e, self.s
        e("%svoid %s_init(%s *m)" % (self.linkage(), s.cname, s.cname))
        e("{")
        e("memset(m, 0, sizeof(*m));")
        for f in s.fields:
            d = Default(f)
            v = "m->" + f.cname
            if f.is_array:
                if d.is_null:
                    e("%s.count = -1;" % v)
            elif f.is_struct_pointer:
                pass
            elif f.is_struct:
                e("%s_init(&%s);" % (f.struct.cname, v))
            elif f.elem == "string":
                if d.is_null:
                    e("%s = KP_STR_NULL;" % v)
                elif d.text:
                    e("%s = (kp_str){%s, %d};" % (v, c_string_literal(d.text), len(d.text.encode())))
            elif f.elem in ("bytes", "records"):
                if d.is_null:
                    e("%s = KP_BYTES_NULL;" % v)
            elif d.nonzero_scalar():
                e("%s = %s;" % (v, d.literal))
        e("}")
        e()

    def gen_is_default(self):
        e, s = self.e, self.s
        e("static bool %s_is_default(const %s *m)" % (s.cname, s.cname))
        e("{")
        conds = [non_default_expr(f, "m->" + f.cname) for f in s.fields]
        if not self.msg.flexible.empty():
            conds.append("m->unknown_tags != NULL")
        if conds:
            e("return !(%s);" % " ||\n             ".join(conds))
        else:
            e("(void)m;")
            e("return true;")
        e("}")
        e()

    # -- decode --

    def read_value(self, elem_field, t, dst, rd, flex, nullable):
        e = self.e
        if t in PRIMITIVES and PRIMITIVES[t][1]:
            e("%s = %s(%s);" % (dst, PRIMITIVES[t][1], rd))
        elif t == "string":
            e("%s = kp_read_str(%s, %s, %s);" % (dst, rd, flex, nullable))
        elif t == "bytes":
            e("%s = kp_read_blob(%s, %s, %s);" % (dst, rd, flex, nullable))
        elif t == "records":
            e("%s = kp_read_records(%s, %s);" % (dst, rd, flex))
        else:
            e("%s_read(%s, a, version, &%s);" % (elem_field.struct.cname, rd, dst))

    def read_field(self, f, rd, flex, in_block=False):
        e = self.e
        v = "out->" + f.cname
        nullable = vcond(f.nullable, self.msg)
        if f.is_array:
            if not in_block:
                e("{")
            min_size = min_elem_size(f, self.msg)
            if min_size == 0:
                sys.stderr.write("kgen: warning: %s.%s elements may be empty\n" %
                                 (self.msg.name, f.name))
            e("int32_t n = kp_read_array_len(%s, %s, %s, %d);" % (rd, flex, nullable, min_size))
            e("%s.items = kp_read_array_alloc(%s, a, n, sizeof(*%s.items));" % (v, rd, v))
            e("%s.count = (%s.items || n < 0) ? n : 0;" % (v, v))
            err = "sub.err" if rd == "&sub" else "%s->err" % rd
            e("for (int32_t i = 0; i < %s.count && !%s; i++)" % (v, err))
            self.e.level += 1
            self.read_value(f, f.elem, v + ".items[i]", rd, flex, "0")
            self.e.level -= 1
            if not in_block:
                e("}")
        elif f.is_struct_pointer:
            cn = f.struct.cname
            marker = "kp_read_i8(%s) < 0" % rd
            if nullable != "1":
                marker = "(%s) && %s" % (nullable, marker) if nullable != "0" else None
            if marker:
                e("if (%s) {" % marker)
                e("%s = NULL;" % v)
                e("} else {")
            else:
                e("{")
            e("%s = kp_read_array_alloc(%s, a, 1, sizeof(%s));" % (v, rd, cn))
            e("if (%s)" % v)
            e("    %s_read(%s, a, version, %s);" % (cn, rd, v))
            e("}")
        else:
            self.read_value(f, f.elem, v, rd, flex, nullable)

    def gen_read(self):
        e, s, msg = self.e, self.s, self.msg
        e("static void %s_read(kp_reader *r, kp_arena *a, int16_t version, %s *out)" %
          (s.cname, s.cname))
        e("{")
        e("%s_init(out);" % s.cname)
        for f in s.fields:
            if f.is_tagged:
                continue
            cond = self.present(f)
            if cond == "0":
                continue
            if cond != "1":
                e("if (%s) {" % cond)
            self.read_field(f, "r", self.field_flex(f), in_block=cond != "1")
            if cond != "1":
                e("}")
        self.gen_read_tags()
        e("}")
        e()

    def gen_read_tags(self):
        e, s = self.e, self.s
        if self.flex == "0":
            return
        known = [f for f in s.tagged_fields() if self.present(f) != "0"]
        if self.flex != "1":
            e("if (%s) {" % self.flex)
        if not known:
            e("kp_read_tagged_fields(r, a, &out->unknown_tags);")
        else:
            e("kp_tagged **tail = &out->unknown_tags;")
            e("uint32_t ntags = kp_read_tags_begin(r);")
            e("for (uint32_t t = 0; t < ntags && !r->err; t++) {")
            e("kp_reader sub;")
            e("uint32_t tag = kp_read_tag(r, &sub);")
            first = True
            for f in known:
                cond = c_and("tag == %d" % f.tag, self.present(f))
                e("%sif (%s) {" % ("" if first else "} else ", cond))
                first = False
                self.read_field(f, "&sub", "1", in_block=True)
                e("out->has_%s = true;" % f.cname)
            e("} else {")
            e("tail = kp_tagged_keep(r, a, tail, tag, &sub);")
            e("}")
            e("kp_read_tag_end(r, &sub);")
            e("}")
        if self.flex != "1":
            e("}")

    # -- encode --

    def write_value(self, elem_field, t, src, flex, nullable):
        e = self.e
        if t in PRIMITIVES and PRIMITIVES[t][2]:
            e("%s(w, %s);" % (PRIMITIVES[t][2], src))
        elif t == "string":
            e("kp_write_str(w, %s, %s, %s);" % (flex, nullable, src))
        elif t == "bytes":
            e("kp_write_blob(w, %s, %s, %s);" % (flex, nullable, src))
        elif t == "records":
            e("kp_write_records(w, %s, %s);" % (flex, src))
        else:
            e("%s_write(w, version, &%s);" % (elem_field.struct.cname, src))

    def write_field(self, f, flex):
        e = self.e
        v = "in->" + f.cname
        nullable = vcond(f.nullable, self.msg)
        if f.is_array:
            e("kp_write_array_len(w, %s, %s, %s.count);" % (flex, nullable, v))
            e("for (int32_t i = 0; i < %s.count; i++)" % v)
            self.e.level += 1
            self.write_value(f, f.elem, v + ".items[i]", flex, "0")
            self.e.level -= 1
        elif f.is_struct_pointer:
            e("if (!%s) {" % v)
            emit_if(e, nullable, "kp_write_i8(w, -1);", "kp_writer_fail(w, KP_ERR_INVALID);")
            e("} else {")
            emit_if(e, nullable, "kp_write_i8(w, 1);", None)
            e("%s_write(w, version, %s);" % (f.struct.cname, v))
            e("}")
        else:
            self.write_value(f, f.elem, v, flex, nullable)

    def gen_write(self):
        e, s = self.e, self.s
        e("static void %s_write(kp_writer *w, int16_t version, const %s *in)" %
          (s.cname, s.cname))
        e("{")
        for f in s.fields:
            if f.is_tagged:
                continue
            cond = self.present(f)
            check = None if f.ignorable else non_default_expr(f, "in->" + f.cname)
            if cond == "1":
                self.write_field(f, self.field_flex(f))
                continue
            if cond != "0":
                e("if (%s) {" % cond)
                self.write_field(f, self.field_flex(f))
                if check:
                    e("} else if (%s) {" % check)
                    e("kp_writer_fail(w, KP_ERR_VERSION);")
                e("}")
            elif check:
                e("if (%s)" % check)
                e("    kp_writer_fail(w, KP_ERR_VERSION);")
        self.gen_write_tags()
        e("}")
        e()

    def gen_write_tags(self):
        e, s = self.e, self.s
        known = [f for f in s.tagged_fields() if self.present(f) != "0"]
        for f in s.tagged_fields():
            if f.ignorable or self.present(f) == "1":
                continue
            # A non-ignorable tagged field set at a version that lacks it cannot be sent.
            cond = self.present(f)
            bad = non_default_expr(f, "in->" + f.cname)
            if cond != "0":
                bad = "!(%s) && (%s)" % (cond, bad)
            e("if (%s)" % bad)
            e("    kp_writer_fail(w, KP_ERR_VERSION);")
        if self.flex == "0":
            return
        if self.flex != "1":
            e("if (%s) {" % self.flex)
        if not known:
            e("kp_write_tagged_fields(w, in->unknown_tags);")
        else:
            e("const kp_tagged *u = in->unknown_tags;")
            names = []
            for f in known:
                name = "send_" + f.cname
                names.append(name)
                want = "in->has_%s || %s" % (f.cname, non_default_expr(f, "in->" + f.cname))
                e("const bool %s = %s;" % (name, c_and(self.present(f), "(%s)" % want)))
            e("kp_write_uvarint(w, kp_tagged_count(u) + %s);" %
              " + ".join("(uint32_t)" + n for n in names))
            for f, name in zip(known, names):
                e("if (%s) {" % name)
                e("u = kp_write_unknown_below(w, u, %d);" % f.tag)
                e("size_t mark = kp_writer_tag_begin(w, %d);" % f.tag)
                self.write_field(f, "1")
                e("kp_writer_tag_end(w, mark);")
                e("}")
            e("kp_write_unknown_rest(w, u);")
        if self.flex != "1":
            e("}")

    # -- random --

    def fill_value(self, elem_field, t, dst, nullable):
        e = self.e
        if t in PRIMITIVES and PRIMITIVES[t][3]:
            e("%s = %s(rng);" % (dst, PRIMITIVES[t][3]))
        elif t == "string":
            e("%s = kp_rand_str(a, rng, %s);" % (dst, nullable))
        elif t in ("bytes", "records"):
            e("%s = kp_rand_blob(a, rng, %s);" % (dst, nullable))
        else:
            e("%s_fill(a, rng, version, depth + 1, &%s);" % (elem_field.struct.cname, dst))

    def fill_field(self, f, in_block=False):
        e = self.e
        v = "out->" + f.cname
        nullable = vcond(f.nullable, self.msg)
        if f.is_array:
            if not in_block:
                e("{")
            e("int32_t n = kp_rand_count(rng, %s, depth);" % nullable)
            e("%s.items = n > 0 ? kp_arena_calloc(a, (size_t)n, sizeof(*%s.items)) : NULL;" %
              (v, v))
            e("%s.count = (%s.items || n < 0) ? n : 0;" % (v, v))
            e("for (int32_t i = 0; i < %s.count; i++)" % v)
            self.e.level += 1
            self.fill_value(f, f.elem, v + ".items[i]", "0")
            self.e.level -= 1
            if not in_block:
                e("}")
        elif f.is_struct_pointer:
            cn = f.struct.cname
            e("if (!(%s) || kp_rand_below(rng, 4) != 0) {" % nullable)
            e("%s = kp_arena_calloc(a, 1, sizeof(%s));" % (v, cn))
            e("if (%s)" % v)
            e("    %s_fill(a, rng, version, depth + 1, %s);" % (cn, v))
            e("}")
        else:
            self.fill_value(f, f.elem, v, nullable)

    def gen_fill(self):
        e, s = self.e, self.s
        e("static void %s_fill(kp_arena *a, uint64_t *rng, int16_t version, int depth, %s *out)" %
          (s.cname, s.cname))
        e("{")
        e("%s_init(out);" % s.cname)
        for f in s.fields:
            cond = self.present(f)
            if cond == "0":
                continue
            if cond == "1" and not f.is_tagged:
                self.fill_field(f)
                continue
            e("if (%s) {" % cond)
            if f.is_tagged:
                e("if (kp_rand_below(rng, 2)) {")
                self.fill_field(f, in_block=True)
                e("}")
                e("out->has_%s = kp_rand_bool(rng);" % f.cname)
            else:
                self.fill_field(f, in_block=True)
            e("}")
        if self.flex != "0":
            tags = sorted({f.tag for f in s.fields if f.is_tagged})
            if tags:
                e("static const uint32_t known_tags[] = {%s};" % ", ".join(map(str, tags)))
                known = "known_tags, %d" % len(tags)
            else:
                known = "NULL, 0"
            if self.flex != "1":
                e("if (%s)" % self.flex)
                e("    out->unknown_tags = kp_rand_unknown_tags(a, rng, %s);" % known)
            else:
                e("out->unknown_tags = kp_rand_unknown_tags(a, rng, %s);" % known)
        e("}")
        e()


def emit_message_source(msg):
    e = Emitter()
    e("/* Generated by tools/kgen/kgen.py from protocol/messages/%s.json. Do not edit. */" %
      msg.file_base)
    e('#include "kp_msgs.h"')
    e()
    e("#include <string.h>")
    e()
    # Prototypes first: structs may refer to each other in any order.
    for s in msg.all_structs():
        if s is not msg.top:
            e("static void %s_init(%s *m);" % (s.cname, s.cname))
        e("static void %s_read(kp_reader *r, kp_arena *a, int16_t version, %s *out);" %
          (s.cname, s.cname))
        e("static void %s_write(kp_writer *w, int16_t version, const %s *in);" %
          (s.cname, s.cname))
        e("static void %s_fill(kp_arena *a, uint64_t *rng, int16_t version, int depth, %s *out);"
          % (s.cname, s.cname))
    e()
    # Generate the bodies first: writing them decides which structs need is_default, and an
    # is_default may need the is_default of the structs it embeds (iterate to a fixpoint).
    body = Emitter()
    for s in msg.all_structs():
        g = StructGen(msg, s, body)
        g.gen_init()
        g.gen_read()
        g.gen_write()
        g.gen_fill()
    done = set()
    while True:
        todo = [s for s in msg.all_structs() if s.needs_is_default and s.name not in done]
        if not todo:
            break
        for s in todo:
            done.add(s.name)
            StructGen(msg, s, body).gen_is_default()
    for s in msg.all_structs():
        if s.needs_is_default:
            e("static bool %s_is_default(const %s *m);" % (s.cname, s.cname))
    e()
    e.lines.extend(body.lines)
    emit_public(msg, e)
    return e.text()


def emit_public(msg, e):
    c = msg.cname
    lo, hi = msg.valid.lo, msg.valid.hi
    vcheck = "version < %d || version > %d" % (lo, hi)
    e("int %s_decode(kp_reader *r, kp_arena *a, int16_t version, %s *out)" % (c, c))
    e("{")
    e("if (%s) {" % vcheck)
    e("kp_reader_fail(r, KP_ERR_VERSION);")
    e("return -1;")
    e("}")
    e("%s_read(r, a, version, out);" % c)
    e("return r->err ? -1 : 0;")
    e("}")
    e()
    e("void %s_encode(kp_writer *w, int16_t version, const %s *in)" % (c, c))
    e("{")
    e("if (%s)" % vcheck)
    e("    kp_writer_fail(w, KP_ERR_VERSION);")
    e("else")
    e("    %s_write(w, version, in);" % c)
    e("}")
    e()
    e("void %s_random(kp_arena *a, uint64_t *rng, int16_t version, %s *out)" % (c, c))
    e("{")
    e("%s_fill(a, rng, version, 0, out);" % c)
    e("}")
    e()
    e("static int decode_any(kp_reader *r, kp_arena *a, int16_t version, void *out)")
    e("{")
    e("return %s_decode(r, a, version, out);" % c)
    e("}")
    e()
    e("static void encode_any(kp_writer *w, int16_t version, const void *in)")
    e("{")
    e("%s_encode(w, version, in);" % c)
    e("}")
    e()
    e("static void init_any(void *m)")
    e("{")
    e("%s_init(m);" % c)
    e("}")
    e()
    e("static void random_any(kp_arena *a, uint64_t *rng, int16_t version, void *out)")
    e("{")
    e("%s_random(a, rng, version, out);" % c)
    e("}")
    e()
    e("const kp_msg_codec %s_codec = {" % c)
    e(".name = %s," % c_string_literal(msg.name))
    e(".kind = KP_MSG_%s," % msg.kind.upper())
    e(".api_key = %d," % (msg.api_key if msg.api_key is not None else -1))
    e(".min_version = %d," % lo)
    e(".max_version = %d," % hi)
    e(".flexible_min = %d," % (-1 if msg.flexible.empty() else msg.flexible.lo))
    e(".size = sizeof(%s)," % c)
    top_error = next((f for f in msg.top.fields if f.name == "ErrorCode" and f.type == "int16"
                      and not f.is_tagged), None)
    if top_error:
        e(".error_code_offset = (int)offsetof(%s, %s)," % (c, top_error.cname))
        e(".error_code_min = %d," % top_error.versions.lo)
        e(".error_code_max = %d," % top_error.versions.hi)
    else:
        e(".error_code_offset = -1,")
    e(".decode = decode_any,")
    e(".encode = encode_any,")
    e(".init = init_any,")
    e(".random = random_any,")
    e("};")


HEADER_PRELUDE = """\
/* Generated by tools/kgen/kgen.py from the JSON specs in protocol/messages. Do not edit.
 * See the docstring of tools/kgen/kgen.py for how JSON specs map to these C types. */
#ifndef KP_MSGS_H
#define KP_MSGS_H

#include "proto/kp_prim.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One past the highest api key in the specs. */
#define KP_API_MAX %(api_max)d

enum kp_msg_kind { KP_MSG_REQUEST, KP_MSG_RESPONSE, KP_MSG_HEADER, KP_MSG_DATA };

/* Type-erased entry points of one generated message, for code that iterates over messages. */
typedef struct kp_msg_codec {
    const char *name; /* JSON name, e.g. "MetadataResponse" */
    enum kp_msg_kind kind;
    int16_t api_key; /* -1 for headers and data structures */
    int16_t min_version, max_version;
    int16_t flexible_min; /* first flexible version, -1 if none */
    size_t size;          /* sizeof the message struct */
    /* A top-level int16 ErrorCode field (responses): its offset in the struct and the versions
     * that have it; offset -1 when there is none. Lets kgate answer any such API with an error
     * without code of its own per API. */
    int error_code_offset;
    int16_t error_code_min, error_code_max;
    int (*decode)(kp_reader *r, kp_arena *a, int16_t version, void *out);
    void (*encode)(kp_writer *w, int16_t version, const void *in);
    void (*init)(void *msg);
    void (*random)(kp_arena *a, uint64_t *rng, int16_t version, void *out);
} kp_msg_codec;

/* Listener bits: where a Kafka node serves the API (from the specs' "listeners"). */
#define KP_LISTENER_ZK_BROKER 1
#define KP_LISTENER_BROKER 2
#define KP_LISTENER_CONTROLLER 4

typedef struct kp_api_info {
    const char *name; /* "Metadata"; NULL for a gap in the key space */
    int16_t api_key;
    int16_t min_version, max_version;
    int16_t flexible_min;     /* first flexible version, -1 if none */
    int listeners;            /* KP_LISTENER_* bits */
    bool latest_unstable;     /* max_version is not yet stable in Kafka */
    const kp_msg_codec *request, *response;
} kp_api_info;

extern const kp_api_info kp_api_table[KP_API_MAX];
/* NULL when kgate has no codec for the key. */
const kp_api_info *kp_api_get(int16_t api_key);
/* "Metadata", or "Unknown" for keys without a codec. */
const char *kp_api_name(int16_t api_key);
/* Whether kgate can decode this key at this version. */
bool kp_api_supported(int16_t api_key, int16_t api_version);
/* Whether clients may send the API: a broker serves it on its client listener ("broker" in the
 * spec's listeners). Inter-broker and controller APIs (LeaderAndIsr, Envelope, Vote, ...) are
 * not, so a gateway neither forwards nor advertises them. */
bool kp_api_client_facing(int16_t api_key);
/* Request header version (0, 1 or 2) for the api and version; -1 when unsupported. */
int kp_api_request_header_version(int16_t api_key, int16_t api_version);
/* Response header version (0 or 1); -1 when unsupported. ApiVersions always answers with 0. */
int kp_api_response_header_version(int16_t api_key, int16_t api_version);

/* Every generated message (requests, responses, headers, data), for tests. */
extern const kp_msg_codec *const kp_all_msgs[];
extern const size_t kp_all_msgs_count;
const kp_msg_codec *kp_msg_find(const char *name);

"""


def emit_header(msgs):
    api_max = max(m.api_key for m in msgs if m.api_key is not None) + 1
    e = Emitter()
    e.lines.extend((HEADER_PRELUDE % {"api_max": api_max}).rstrip("\n").split("\n"))
    e()
    e("/* API keys by name: KP_KEY_PRODUCE, KP_KEY_OFFSET_COMMIT, ... */")
    e("enum kp_api_key {")
    for m in sorted((m for m in msgs if m.kind == "request"), key=lambda m: m.api_key):
        e("KP_KEY_%s = %d," % (snake(m.name[:-len("Request")]).upper(), m.api_key))
    e("};")
    e()
    for m in msgs:
        e("/* ---- %s (%s, versions %s, flexible %s) ---- */" %
          (m.name, m.kind, m.valid, m.flexible))
        e()
        for s in m.all_structs():
            emit_struct_decl(e, m, s)
        c = m.cname
        e("void %s_init(%s *m);" % (c, c))
        e("int %s_decode(kp_reader *r, kp_arena *a, int16_t version, %s *out);" % (c, c))
        e("void %s_encode(kp_writer *w, int16_t version, const %s *in);" % (c, c))
        e("void %s_random(kp_arena *a, uint64_t *rng, int16_t version, %s *out);" % (c, c))
        e("extern const kp_msg_codec %s_codec;" % c)
        e()
    e("#endif")
    return e.text()


def emit_api_table(msgs):
    by_key = {}
    for m in msgs:
        if m.api_key is None:
            continue
        by_key.setdefault(m.api_key, {})[m.kind] = m
    e = Emitter()
    e("/* Generated by tools/kgen/kgen.py. Do not edit. */")
    e('#include "kp_msgs.h"')
    e()
    e("#include <string.h>")
    e()
    e("const kp_api_info kp_api_table[KP_API_MAX] = {")
    for key in sorted(by_key):
        pair = by_key[key]
        req, resp = pair.get("request"), pair.get("response")
        if not req or not resp:
            raise SpecError("api key %d lacks a request or a response" % key)
        if (req.valid.lo, req.valid.hi) != (resp.valid.lo, resp.valid.hi):
            raise SpecError("api key %d: request and response versions differ" % key)
        listeners = " | ".join(LISTENER_BITS[x] for x in req.listeners) or "0"
        e("[%d] = {%s, %d, %d, %d, %d, %s, %s, &%s_codec, &%s_codec}," % (
            key, c_string_literal(req.short_name), key, req.valid.lo, req.valid.hi,
            -1 if req.flexible.empty() else req.flexible.lo, listeners,
            "true" if req.unstable else "false", req.cname, resp.cname))
    e("};")
    e()
    e("const kp_msg_codec *const kp_all_msgs[] = {")
    for m in msgs:
        e("&%s_codec," % m.cname)
    e("};")
    e("const size_t kp_all_msgs_count = %d;" % len(msgs))
    e()
    e(API_FUNCTIONS.strip("\n"))
    return e.text()


API_FUNCTIONS = """
const kp_api_info *kp_api_get(int16_t api_key)
{
    if (api_key < 0 || api_key >= KP_API_MAX || !kp_api_table[api_key].name)
        return NULL;
    return &kp_api_table[api_key];
}

const char *kp_api_name(int16_t api_key)
{
    const kp_api_info *api = kp_api_get(api_key);
    return api ? api->name : "Unknown";
}

bool kp_api_supported(int16_t api_key, int16_t api_version)
{
    const kp_api_info *api = kp_api_get(api_key);
    return api && api_version >= api->min_version && api_version <= api->max_version;
}

bool kp_api_client_facing(int16_t api_key)
{
    const kp_api_info *api = kp_api_get(api_key);
    return api && (api->listeners & KP_LISTENER_BROKER);
}

static bool is_flexible(const kp_api_info *api, int16_t api_version)
{
    return api->flexible_min >= 0 && api_version >= api->flexible_min;
}

int kp_api_request_header_version(int16_t api_key, int16_t api_version)
{
    if (!kp_api_supported(api_key, api_version))
        return -1;
    /* ControlledShutdown v0 predates the client id. */
    if (api_key == 7 && api_version == 0)
        return 0;
    return is_flexible(kp_api_get(api_key), api_version) ? 2 : 1;
}

int kp_api_response_header_version(int16_t api_key, int16_t api_version)
{
    if (!kp_api_supported(api_key, api_version))
        return -1;
    /* ApiVersions answers with header v0 so that any client can read the version list. */
    if (api_key == 18)
        return 0;
    return is_flexible(kp_api_get(api_key), api_version) ? 1 : 0;
}

const kp_msg_codec *kp_msg_find(const char *name)
{
    for (size_t i = 0; i < kp_all_msgs_count; i++)
        if (strcmp(kp_all_msgs[i]->name, name) == 0)
            return kp_all_msgs[i];
    return NULL;
}
"""


# ---- driver ------------------------------------------------------------------------------


def check_identifiers(msgs):
    """Generated names share C's ordinary identifier namespace; refuse any collision."""
    seen = {}
    suffixes = ("", "_init", "_read", "_write", "_fill", "_is_default", "_decode", "_encode",
                "_random", "_codec")
    for m in msgs:
        for s in m.all_structs():
            for suffix in suffixes:
                ident = s.cname + suffix
                owner = seen.setdefault(ident, (m.name, s.name, suffix))
                if owner != (m.name, s.name, suffix):
                    raise SpecError("generated name %s collides (%s and %s.%s)" %
                                    (ident, owner, m.name, s.name))


def write_if_changed(path, text):
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return
    except FileNotFoundError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("spec_dir", help="directory of Kafka JSON message specs")
    args = ap.parse_args(argv)
    paths = sorted(os.path.join(args.spec_dir, n) for n in os.listdir(args.spec_dir)
                   if n.endswith(".json"))
    if not paths:
        raise SpecError("no .json specs in %s" % args.spec_dir)
    msgs = []
    for p in paths:
        try:
            msgs.append(Message(p))
        except (ValueError, KeyError) as ex:
            raise SpecError("%s: %s" % (p, ex))
    check_identifiers(msgs)
    os.makedirs(args.out, exist_ok=True)
    for m in msgs:
        write_if_changed(os.path.join(args.out, "msg_%s.c" % m.file_base), emit_message_source(m))
    write_if_changed(os.path.join(args.out, "kp_msgs.h"), emit_header(msgs))
    write_if_changed(os.path.join(args.out, "kp_api_table.c"), emit_api_table(msgs))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except SpecError as ex:
        sys.stderr.write("kgen: %s\n" % ex)
        sys.exit(1)
