"""Keyboard-only driving: Tab, Shift+Tab, Enter, Space and typing; never the mouse."""

from __future__ import annotations

from playwright.sync_api import Page

_FOCUSED_NAME = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return "";
    const label = el.labels && el.labels.length ? el.labels[0].textContent : "";
    return (el.getAttribute("aria-label") || label || el.textContent || el.value || "")
        .replace(/\\s+/g, " ").trim();
}"""


def focused_name(page: Page) -> str:
    return str(page.evaluate(_FOCUSED_NAME))


def tab_to(page: Page, name: str, *, limit: int = 150, backwards: bool = False) -> None:
    """Press Tab until the focused element's accessible name (text, label or aria-label) is
    `name`; fail with the names passed on the way if it never comes."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        current = focused_name(page)
        if current == name:
            return
        seen.append(current)
    raise AssertionError(f"no focusable element named {name!r}; Tab passed: {seen}")
