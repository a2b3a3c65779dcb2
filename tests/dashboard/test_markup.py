"""User text in markdown is escaped character by character (the browser check is in test_security_browser.py)."""

from dashboard.markup import escape_markdown


def test_markup_characters_are_escaped_and_text_stays_on_one_line():
    assert escape_markdown("<img src=x onerror=alert(1)>") == r"\<img src=x onerror=alert(1)\>"
    assert escape_markdown("[click](javascript:alert(1))") == r"\[click\](javascript:alert(1))"
    assert escape_markdown("**bold** _it_ `code` $x$ ~~s~~ # h | t &lt;") == (
        r"\*\*bold\*\* \_it\_ \`code\` \$x\$ \~\~s\~\~ \# h \| t \&lt;"
    )
    assert escape_markdown("two\nlines\\") == r"two lines\\"
    assert escape_markdown("label 7. early: 0.93 (test)") == "label 7. early: 0.93 (test)"  # plain text unchanged
