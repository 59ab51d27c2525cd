"""Markdown that always fits a pull-request comment (GitHub refuses bodies over 65,536 characters).

A summary is a list of sections, most important first. Sections marked `keep` (the verdict, data at
risk, the totals) are always shown whole. The others get what room is left, in order: each shows as
many of its items as fit and ends with a count of the rest (`… and 412 more changes not shown`). Long lists
fold into `<details>` after their first few items so the comment stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LIMIT = 60_000  # characters: under GitHub's 65,536 with room for the comment's marker and heading
SHOWN_OPEN = 10  # items of a section shown before the rest folds


@dataclass
class Section:
    heading: str = ""
    lines: list[str] = field(default_factory=list)  # shown whenever the section is (a table header)
    items: list[str] = field(default_factory=list)  # the section's entries, most important first
    more: str = "items"  # what the items are: `… and 12 more {more}`
    tail: list[str] = field(default_factory=list)  # shown after the items (notes, a final count)
    keep: bool = False

    def render(self, shown: int, where: str) -> list[str]:
        if not (self.heading or self.lines or self.items or self.tail):
            return []
        out = [self.heading] if self.heading else []
        out += self.lines
        visible = self.items[:shown]
        # What must be seen (a kept section: data at risk) is never folded away.
        folded = visible[SHOWN_OPEN:] if len(visible) > SHOWN_OPEN + 2 and not self.keep else []
        out += visible[: len(visible) - len(folded)]
        if folded:
            # A table row inside <details> would end the table: close it with an empty line first.
            out += ["", f"<details><summary>{len(folded)} more {self.more}</summary>", "", *folded, "", "</details>"]
        hidden = len(self.items) - shown
        if hidden:
            out.append(f"\n… and {hidden} more {self.more} not shown here ({where})")
        out += self.tail
        return [*out, ""]


def render(sections: list[Section], limit: int = LIMIT, where: str = "the full list is in the job log") -> str:
    """The sections as Markdown of at most `limit` characters, keeping every `keep` section whole
    (unless those alone exceed the limit, when even they are counted rather than listed)."""
    shown = [len(s.items) for s in sections]

    def text() -> str:
        return "\n".join(line for s, n in zip(sections, shown, strict=True) for line in s.render(n, where))

    body = text()
    # Cut from the least important section up, roughly by the excess, then by single items.
    order = [i for i in reversed(range(len(sections))) if not sections[i].keep]
    order += [i for i in reversed(range(len(sections))) if sections[i].keep]
    for index in order:
        while len(body) > limit and shown[index] > 0:
            section = sections[index]
            excess = len(body) - limit
            average = max(1, sum(len(i) + 1 for i in section.items[: shown[index]]) // shown[index])
            shown[index] = max(0, shown[index] - max(1, excess // average))
            body = text()
        if len(body) <= limit:
            break
    if len(body) > limit:  # headings and counts alone: nothing sensible is left to cut
        body = body[: limit - 40] + "\n\n… (summary cut at the comment limit)\n"
    return body + ("" if body.endswith("\n") else "\n")
