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


_FOCUS_RING = """() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    return el.matches(":focus-visible") && style.outlineStyle !== "none"
        && parseFloat(style.outlineWidth) >= 2;
}"""


def assert_focus_visible(page: Page) -> None:
    """The focused element shows a focus ring of at least 2 px (WCAG 2.4.7, 2.4.13 in spirit)."""
    assert page.evaluate(_FOCUS_RING), f"no visible focus ring on {focused_name(page)!r}"


def tab_to(page: Page, name: str, *, limit: int = 150, backwards: bool = False) -> None:
    """Press Tab until the focused element's accessible name (text, label or aria-label) is
    `name`, and check that its focus is visible; fail with the names passed on the way if it
    never comes."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        current = focused_name(page)
        if current == name:
            assert_focus_visible(page)
            return
        seen.append(current)
    raise AssertionError(f"no focusable element named {name!r}; Tab passed: {seen}")
