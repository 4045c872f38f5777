from server.settings import Settings, parse_settings


def test_defaults():
    s, problems = parse_settings(None)
    assert s == Settings() and problems == []


def test_nested_section_and_values():
    s, problems = parse_settings({"ghostline": {"maxTokens": 32, "multiline": "never", "enable": False}})
    assert (s.maxTokens, s.multiline, s.enable) == (32, "never", False) and not problems


def test_bad_values_fall_back_with_a_message():
    s, problems = parse_settings({"maxTokens": 99999, "multiline": "sometimes", "enable": "yes",
                                  "languages": {"python": "no"}})
    assert s == Settings()
    assert len(problems) == 4 and any("maxTokens" in p and "between" in p for p in problems)


def test_merge_keeps_previous_values():
    base, _ = parse_settings({"maxTokens": 10})
    s, _ = parse_settings({"telemetryLevel": "metrics"}, base)
    assert s.maxTokens == 10 and s.telemetryLevel == "metrics"


def test_per_language_enable():
    s, _ = parse_settings({"languages": {"markdown": False, "*": True}})
    assert s.enabled_for("python") and not s.enabled_for("markdown")
    s, _ = parse_settings({"languages": {"*": False, "python": True}})
    assert s.enabled_for("python") and not s.enabled_for("go")
    s, _ = parse_settings({"enable": False, "languages": {"python": True}})
    assert not s.enabled_for("python")


def test_float_integers_accepted():
    s, problems = parse_settings({"debounceMs": 200.0})
    assert s.debounceMs == 200 and not problems
