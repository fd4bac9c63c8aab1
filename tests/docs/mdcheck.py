#!/usr/bin/env python3
"""Helpers of tests/docs/run.sh (standard library only).

  mdcheck.py links FILE.md...     every relative link and #anchor points at an
                                  existing file and heading (GitHub's anchors)
  mdcheck.py blocks FILE.md DIR   writes DIR/script.sh, the file's ```sh blocks
                                  in order, each preceded by `__block N LINE`,
                                  and DIR/block.N (the block, for reports);
                                  prints "RUN SKIPPED PORTS..." on stdout
"""

import os
import re
import sys

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)")
SKIP = re.compile(r"^<!--\s*not run by tests/docs/run\.sh\b")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# Ports a file's commands use: host:port, or --listen/--advertise ...:port.
PORT = re.compile(r"(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\]):(\d{2,5})\b")


def split(lines):
    """Yields (kind, start_line, body_lines, lang, skip) for fenced blocks and
    ("text", line, [line]) for every line outside them."""
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            yield ("text", i + 1, [lines[i]], None, False)
            i += 1
            continue
        fence, lang = m.group(1), m.group(2)
        skip = i > 0 and bool(SKIP.match(lines[i - 1].strip()))
        body = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence[0] * len(fence)):
            body.append(lines[j])
            j += 1
        yield ("fence", i + 1, body, lang, skip)
        i = j + 1


def slug(text):
    """GitHub's heading anchor: markup and punctuation dropped, lowercased,
    spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w is Unicode-aware, as GitHub's
    return text.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        seen = {}
        found = set()
        with open(path, encoding="utf-8") as f:
            for kind, _, body, _, _ in split(f.read().splitlines()):
                if kind != "text":
                    continue
                m = HEADING.match(body[0])
                if not m:
                    continue
                base = slug(m.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                found.add(base if n == 0 else f"{base}-{n}")
        cache[path] = found
    return cache[path]


def links(files):
    bad = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        for kind, line_no, body, _, _ in split(lines):
            if kind != "text":
                continue
            text = INLINE_CODE.sub("", body[0])
            for m in LINK.finditer(text):
                target = m.group(1)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                    continue  # http:, https:, mailto:
                file_part, _, anchor = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
                where = f"{path}:{line_no}: [{target}]"
                if not os.path.exists(dest):
                    bad.append(f"{where}: no file {dest}")
                elif anchor:
                    if not dest.endswith(".md"):
                        bad.append(f"{where}: an anchor into a file that is not markdown")
                    elif anchor not in anchors(dest):
                        bad.append(f"{where}: {dest} has no heading with the anchor #{anchor}")
    for b in bad:
        print(b)
    return 1 if bad else 0


def blocks(path, out_dir):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    script = []
    run = skipped = 0
    ports = set()
    for kind, line_no, body, lang, skip in split(lines):
        if kind != "fence" or lang not in ("sh", "shell"):
            continue
        if skip:
            skipped += 1
            continue
        run += 1
        with open(os.path.join(out_dir, f"block.{run}"), "w", encoding="utf-8") as f:
            f.write("\n".join(body) + "\n")
        script.append(f"__block {run} {line_no + 1}")
        script.extend(body)
        for text in body:
            code = text.split("#", 1)[0] if not text.lstrip().startswith("#") else ""
            ports.update(int(p) for p in PORT.findall(code))
    script.append("__block done 0")
    with open(os.path.join(out_dir, "script.sh"), "w", encoding="utf-8") as f:
        f.write("\n".join(script) + "\n")
    print(run, skipped, *sorted(ports))
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "links":
        sys.exit(links(sys.argv[2:]))
    if len(sys.argv) == 4 and sys.argv[1] == "blocks":
        sys.exit(blocks(sys.argv[2], sys.argv[3]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
