"""Shell completion: ``kubectl-hubspot completion bash|zsh`` prints a small script; both scripts, and
kubectl's own plugin completion (kubectl >= 1.26 runs ``kubectl_complete-hubspot ARGS... PARTIAL``), ask
the plugin itself: ``kubectl-hubspot __complete ARGS... PARTIAL`` prints one candidate per line and then a
Cobra-style directive line (``:4`` = no file completion, ``:0`` = let the shell complete file names).

Commands and flags come from the argparse parser itself, so they cannot drift. NAME completes to the
HubSpotTokens of the namespace (``-n`` on the line, else the context's), read with the plugin's API client
(a few seconds' timeout; any error just means no candidates).
"""

from __future__ import annotations

import argparse
from typing import Callable

DIRECTIVE_DEFAULT = 0  # the shell may complete file names
DIRECTIVE_NO_FILES = 4  # cobra.ShellCompDirectiveNoFileComp
FILE_FLAGS = {"--kubeconfig", "--from-file"}
COMPLETION_TIMEOUT = 5  # seconds per API call while completing

BASH = r'''# bash completion for kubectl-hubspot. Load it with:
#   source <(kubectl-hubspot completion bash)
# (`kubectl hubspot <TAB>` itself needs kubectl >= 1.26 and kubectl_complete-hubspot on PATH: see docs.)
_kubectl_hubspot() {
    local cur=${COMP_WORDS[COMP_CWORD]} line directive=0
    local -a cands=()
    COMPREPLY=()
    while IFS='' read -r line; do
        if [[ $line == :* ]]; then directive=${line#:}; elif [[ -n $line ]]; then cands+=("$line"); fi
    done < <("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
    COMPREPLY=($(compgen -W "${cands[*]}" -- "$cur"))
    if (( ${#COMPREPLY[@]} == 0 && directive != 4 )); then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _kubectl_hubspot kubectl-hubspot
'''

ZSH = r'''#compdef kubectl-hubspot
# zsh completion for kubectl-hubspot. Load it (after compinit) with:
#   source <(kubectl-hubspot completion zsh)
# (`kubectl hubspot <TAB>` itself needs kubectl >= 1.26 and kubectl_complete-hubspot on PATH: see docs.)
_kubectl_hubspot() {
    local -a cands lines
    local line directive=0
    lines=("${(@f)$(${words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    for line in $lines; do
        if [[ $line == :* ]]; then directive=${line#:}; elif [[ -n $line ]]; then cands+=("$line"); fi
    done
    if (( ${#cands} )); then
        compadd -a cands
    elif (( directive != 4 )); then
        _files
    fi
}
compdef _kubectl_hubspot kubectl-hubspot
'''

SCRIPTS = {"bash": BASH, "zsh": ZSH}


def script(shell: str) -> str:
    return SCRIPTS[shell]


def grammar(parser: argparse.ArgumentParser) -> dict:
    """{command: {"flags": {flag: takes_value}, "choices": {flag: [...]}, "positionals": [[choices] | None]}}
    read from the parser; key "" is the top level (before a command)."""

    def describe(p: argparse.ArgumentParser) -> dict:
        flags, choices, positionals = {}, {}, []
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                continue
            if a.option_strings:
                for o in a.option_strings:
                    flags[o] = a.nargs != 0
                    if a.choices:
                        choices[o] = list(a.choices)
            else:
                positionals.append(list(a.choices) if a.choices else None)
        return {"flags": flags, "choices": choices, "positionals": positionals}

    out = {"": describe(parser)}
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            out[""]["commands"] = [c for c in a.choices if not c.startswith("_")]
            for name, sub in a.choices.items():
                out[name] = describe(sub)
    return out


def candidates(words: list[str], g: dict, names: Callable[[str, dict], list[str]]) -> tuple[list[str], int]:
    """Completions for the last word of ``words`` (the partial word, maybe ""); pure apart from ``names``,
    which is called as names(what, options) with what "tokens" or "targets" and the flags seen so far."""
    if not words:
        words = [""]
    *done, partial = words
    command, positionals, options = "", [], {}
    i = 0
    while i < len(done):
        w = done[i]
        spec = g[command] if command in g else g[""]
        if w.startswith("-") and w != "-":
            flag, _, inline = w.partition("=")
            takes = spec["flags"].get(flag, g[""]["flags"].get(flag, False))
            if takes and not inline:
                i += 1
                options[flag] = done[i] if i < len(done) else ""
                if i >= len(done):  # the flag's value is the partial word
                    break
            elif takes:
                options[flag] = inline
        elif not command and w in g and w:
            command = w
        else:
            positionals.append(w)
        i += 1
    spec = g[command] if command in g else g[""]
    # completing a flag's value?
    if done and done[-1].startswith("-") and "=" not in done[-1]:
        flag = done[-1]
        if spec["flags"].get(flag, g[""]["flags"].get(flag, False)):
            if flag in FILE_FLAGS:
                return [], DIRECTIVE_DEFAULT
            allowed = spec["choices"].get(flag) or g[""]["choices"].get(flag)
            return (_match(allowed, partial) if allowed else []), DIRECTIVE_NO_FILES
    if partial.startswith("-"):
        return _match(sorted(spec["flags"]), partial), DIRECTIVE_NO_FILES
    if not command:
        return _match(g[""].get("commands", []), partial), DIRECTIVE_NO_FILES
    slots = spec["positionals"]
    slot = len(positionals)
    if slot < len(slots) and slots[slot]:
        return _match(slots[slot], partial), DIRECTIVE_NO_FILES
    if command in ("status", "rotate", "refresh", "authorize") and slot == 0:
        return _match(names("tokens", options), partial), DIRECTIVE_NO_FILES
    if command == "inspect" and slot == 1 and positionals[:1] == ["secret"]:
        return _match(names("targets", options), partial), DIRECTIVE_NO_FILES
    return [], DIRECTIVE_NO_FILES


def _match(options: list[str], partial: str) -> list[str]:
    return [o for o in options if o.startswith(partial)]


def api_names(what: str, options: dict) -> list[str]:
    """Token names (or their target Secret names) in the namespace, read quietly; [] on any error."""
    from .api import KubeAPI

    try:
        api = KubeAPI.from_kubeconfig(options.get("--kubeconfig") or None, options.get("--context") or None,
                                      request_timeout=COMPLETION_TIMEOUT)
        ns = options.get("-n") or options.get("--namespace") or api.default_namespace() or "default"
        items = api.list_tokens(ns)
    except Exception:  # noqa: BLE001 - completion never fails loudly
        return []
    if what == "targets":
        return sorted({((i.get("spec") or {}).get("target") or {}).get("name") for i in items} - {None})
    return sorted((i.get("metadata") or {}).get("name") for i in items)


def complete(words: list[str], parser: argparse.ArgumentParser,
             names: Callable[[str, dict], list[str]] = api_names) -> list[str]:
    """The lines ``__complete`` prints: candidates, then the directive."""
    cands, directive = candidates(words, grammar(parser), names)
    return [*cands, f":{directive}"]
