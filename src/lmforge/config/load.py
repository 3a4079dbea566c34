"""Read a config from YAML, apply ``--set a.b=value`` overrides, validate it.

Every problem found (bad override, unknown key, wrong type, cross-field conflict) is
gathered into one ``ConfigError``, one line per problem, so a user fixes them in one go.
The run config (``RunConfig``) is the main one; any ``Section`` model loads the same way
(``load_settings``): the compress and serve configs do.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from lmforge.config.schema import KEY_SYNONYMS, RunConfig
from lmforge.config.section import did_you_mean
from lmforge.config.tasks import TaskSettings, task_entries, task_entry
from lmforge.errors import LmforgeError

SCHEMA_HINT = "run `lmforge config schema` to see every field"
Settings = TypeVar("Settings", bound=BaseModel)


class ConfigError(LmforgeError):
    """A run config that cannot be used; the message lists every problem and the fix.

    Attributes:
        source: The file (or ``<dict>``) the config came from.
        problems: One line per problem, each starting with the dotted key it concerns.
    """

    def __init__(
        self, source: str, problems: Sequence[str], fix: str, what: str = "run config"
    ) -> None:
        self.source = source
        self.problems = list(problems)
        if len(self.problems) == 1 and "\n" not in self.problems[0]:
            message = f"{source}: {self.problems[0]}\n{fix}"
        else:
            count = f"{len(self.problems)} problem{'s' if len(self.problems) > 1 else ''}"
            lines = "\n".join(f"  {problem}" for problem in self.problems)
            message = f"{source}: {count} in the {what}:\n{lines}\n{fix}"
        super().__init__(message)


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float (as YAML 1.2 does) and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line)
            except TypeError:  # unhashable key; SafeLoader reports it below
                continue
            if first != key_node.start_mark.line:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first set at line {first + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


# PyYAML follows YAML 1.1, where a float needs a dot: `lr: 1e-4` would load as a string.
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Load a YAML run config, apply ``KEY=VALUE`` overrides and validate it.

    Relative paths written in the file (``data.train``, ``output.dir``, ...) are taken
    relative to the file's directory; relative paths given in overrides, relative to the
    current directory. Both come back absolute.

    Args:
        path: The YAML file.
        overrides: ``a.b=value`` strings; each value is parsed as YAML
            (``train.lr=1e-4`` is a float, ``data.fields.text=body`` a string).

    Returns:
        The validated config.

    Raises:
        ConfigError: The file is missing, unreadable, not YAML, not a mapping, or the
            config has problems (all of them listed in the one error).
    """
    return load_settings(path, RunConfig, overrides)


def load_settings(
    path: str | Path | None,
    model: type[Settings],
    overrides: Sequence[str] = (),
    *,
    given: Mapping[str, Any] | None = None,
) -> Settings:
    """Load a config of type ``model`` (a ``Section``) from YAML, as ``load_config`` does.

    Args:
        path: The YAML file, or None to start from an empty config.
        model: The config class, e.g. ``CompressConfig``.
        overrides: ``a.b=value`` strings, applied last.
        given: Values that replace the file's (a CLI's flags), relative paths taken
            against the current directory; applied before ``overrides``.

    Raises:
        ConfigError: Every problem found, one per line, naming the key.
    """
    tree: dict[str, Any] = {}
    source = "<command line>"
    base_dir: Path | None = None
    if path is not None:
        source = str(path)
        tree = _read_yaml(Path(path), source, model)
        base_dir = Path(path).absolute().parent
    if base_dir is not None:
        _absolutize_paths(tree, model, base_dir)
    for key, value in (given or {}).items():
        is_path = _is_path(_annotation_at([key], tree, model))
        tree[key] = str(_absolute(str(value), Path.cwd())) if is_path and value else value
    return load_config_dict(tree, source, overrides=overrides, model=model)


def load_config_dict(
    data: Mapping[str, Any],
    source: str = "<dict>",
    *,
    overrides: Sequence[str] = (),
    base_dir: str | Path | None = None,
    model: type[Any] = RunConfig,
) -> Any:
    """Validate a run config (or another ``model``) given as a mapping (as parsed from YAML).

    Args:
        data: The sections, e.g. ``{"model": {"ref": ...}, "task": {...}, ...}``; not modified.
        source: What to call the config in error messages (a file name).
        overrides: ``a.b=value`` strings applied on top of ``data``.
        base_dir: Directory that relative paths in ``data`` are relative to; ``None``
            leaves them as written.

    Returns:
        The validated config.

    Raises:
        ConfigError: Every problem found, one per line.
    """
    what, example = _naming(model)
    hint = _schema_hint(model)
    if not isinstance(data, Mapping):
        raise ConfigError(
            source,
            [f"the top level must be a mapping of keys, got {type(data).__name__}"],
            f"start from an example such as {example}; {hint}",
            what,
        )
    tree: dict[str, Any] = copy.deepcopy(dict(data))
    if base_dir is not None:
        _absolutize_paths(tree, model, Path(base_dir))
    problems = [p for raw in overrides if (p := _apply_override(tree, raw, model)) is not None]
    try:
        config = model.model_validate(tree)
    except ValidationError as err:
        problems += [line for error in err.errors() for line in _describe(error, tree, model)]
    if problems:
        raise ConfigError(
            source, problems, f"Fix the config in the file or with --set KEY=VALUE; {hint}.", what
        )
    return config


def _naming(model: type[Any]) -> tuple[str, str]:
    """What to call a config of type ``model`` in messages, and an example file of one."""
    return (
        getattr(model, "config_name", "run config"),
        getattr(model, "example", "examples/train/sft_customer_service.yaml"),
    )


def _schema_hint(model: type[Any]) -> str:
    kind = getattr(model, "schema_kind", "run")
    if kind == "run":
        return SCHEMA_HINT
    return f"run `lmforge config schema --kind {kind}` to see every field"


def _read_yaml(file: Path, source: str, model: type[Any] = RunConfig) -> Any:
    """Return the parsed YAML document in ``file``, or raise a ConfigError naming it."""
    what, example = _naming(model)
    fix = f"pass the path of a YAML {what}, e.g. {example}"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, [f"no such file (looked for {file.absolute()})"], fix) from None
    except IsADirectoryError:
        raise ConfigError(source, ["is a directory, not a YAML file"], fix) from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            source, [f"is not UTF-8 text ({err.reason} at byte {err.start})"], fix
        ) from None
    except OSError as err:
        raise ConfigError(source, [f"cannot be read: {err.strerror or err}"], fix) from None
    try:
        tree = yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader
    except yaml.MarkedYAMLError as err:
        raise ConfigError(source, [yaml_problem(err)], "Fix the YAML at that line.") from None
    except yaml.YAMLError as err:
        raise ConfigError(source, [f"invalid YAML: {err}"], "Fix the YAML syntax.") from None
    required = [key for key, field in model.model_fields.items() if field.is_required()]
    if tree is None:
        needs = "model.ref, task.name and data.train" if model is RunConfig else ", ".join(required)
        raise ConfigError(
            source,
            [f"is empty; a {what} needs at least {needs}"],
            f"start from an example such as {example}; {_schema_hint(model)}",
            what,
        )
    if not isinstance(tree, dict):
        keys = ", ".join(f"`{key}:`" for key in list(model.model_fields)[:3])
        raise ConfigError(
            source,
            [f"the top level must be a mapping of sections, got {_yaml_kind(tree)}"],
            f"write {keys} ... at the top level; {_schema_hint(model)}",
            what,
        )
    return tree


def yaml_problem(err: yaml.MarkedYAMLError) -> str:
    """One line for a YAML syntax error: line, column, what is wrong."""
    mark = err.problem_mark or err.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    what = err.problem or err.context or "syntax error"
    context = f" ({err.context})" if err.context and err.problem else ""
    return f"invalid YAML at {where}{what}{context}"


def _yaml_kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"a single value {_short(value)}"


def _apply_override(tree: dict[str, Any], raw: str, root: type[BaseModel]) -> str | None:
    """Set ``a.b=value`` in ``tree``; return a problem line instead if it cannot."""
    example = "e.g. --set train.lr=1e-4"
    key, sep, text = raw.partition("=")
    key = key.strip()
    if not sep:
        return f"--set {raw}: expected KEY=VALUE, {example}"
    keys = key.split(".")
    if not key or any(not part for part in keys):
        return f"--set {raw}: {key!r} is not a dotted key like train.lr; {example}"
    try:
        value = yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or "not a YAML value"
        return f"--set {raw}: the value {text!r} is not valid YAML ({problem}); quote it"
    if isinstance(value, str) and _is_path(_annotation_at(keys, tree, root)):
        value = str(_absolute(value, Path.cwd()))
    node = tree
    for depth, part in enumerate(keys[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            parent = ".".join(keys[: depth + 1])
            return f"--set {raw}: {parent} is the value {_short(child)}, not a section"
        node = child
    node[keys[-1]] = value
    return None


def _describe(error: ErrorDetails, tree: Mapping[str, Any], root: type[BaseModel]) -> list[str]:
    """Turn one pydantic error into problem lines that start with the dotted key."""
    loc = error["loc"]
    dotted = ".".join(str(part) for part in loc)
    kind = error["type"]
    if kind == "extra_forbidden" and len(loc) == 2 and loc[0] == "task" and root is RunConfig:
        return [_misplaced_task_setting(str(loc[1]), tree)]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1], tree, root)
        valid = list(model.model_fields) if model else []
        hint = _suggest_key(str(loc[-1]), loc[:-1], valid, root)
        return [
            f"{dotted}: unknown key"
            + (f"; {hint}" if hint else "")
            + (f" (valid keys: {', '.join(valid)})" if valid else "")
        ]
    if kind == "missing":
        return [f"{dotted}: required key is missing"]
    if kind == "value_error":
        # Our validators name their own fields; a top-level one may report several lines.
        lines = error["msg"].removeprefix("Value error, ").splitlines()
        return [
            line if not dotted or line.startswith((f"{dotted}.", f"{dotted}[")) else
            f"{dotted}: {line}"
            for line in lines
        ]  # fmt: skip
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return [f"{dotted}: expected a mapping of keys, got {_short(error['input'])}"]
    message = error["msg"]
    if kind.endswith("_parsing"):  # "..., unable to parse string as a number" adds nothing
        message = message.split(", unable", 1)[0]
    where = f"{dotted}: " if dotted else ""
    line = f"{where}{message}, got {_short(error['input'])}"
    if kind == "literal_error" and isinstance(error["input"], str):
        hint = did_you_mean(error["input"], _literal_choices(loc, tree, root))
        line += f"; {hint}" if hint else ""
    return [line]


def _misplaced_task_setting(key: str, tree: Mapping[str, Any]) -> str:
    """``task.KEY`` that the named task does not take: say which tasks do, and what this
    one takes."""
    settings = _task_settings(tree)
    if settings is TaskSettings:  # task.name is missing or unknown, reported on its own
        names = ", ".join(e.name for e in task_entries())
        return f"task.{key}: checked once task.name names a task ({names})"
    name = tree["task"].get("name")
    takers = [e.name for e in task_entries() if key in e.settings.model_fields]
    if takers:
        where = f"a setting of task {' and '.join(repr(t) for t in takers)}"
    else:
        hint = _suggest_key(key, ("task",), list(settings.model_fields), RunConfig)
        where = "unknown key" + (f"; {hint}" if hint else "")
    return (f"task.{key}: task {name!r} does not take it ({where}); its settings are "
            f"{', '.join(settings.model_fields)}")  # fmt: skip


def _task_settings(tree: Mapping[str, Any] | None) -> type[BaseModel]:
    """The settings model of the task ``tree`` names (the common settings when it names
    none, or one not registered)."""
    task = (tree or {}).get("task")
    name = task.get("name") if isinstance(task, dict) else None
    try:
        return task_entry(name).settings if isinstance(name, str) else TaskSettings
    except LmforgeError:
        return TaskSettings


def _suggest_key(
    key: str, section: Sequence[int | str], valid: list[str], root: type[BaseModel]
) -> str:
    """Suggest the key meant: a known synonym, the same key in another section, or a typo fix."""
    head, dot, _ = key.partition(".")
    if dot and head in valid:
        return f"dotted keys work only in --set; in YAML nest it under {head!r}"
    meant = KEY_SYNONYMS.get(key.lower(), key)
    if meant in valid:
        return f"did you mean {meant!r}?"
    for name, field in root.model_fields.items():
        other = _submodel(field.annotation)
        if other is not None and meant in other.model_fields and (name,) != tuple(section):
            return f"did you mean '{name}.{meant}'?"
    return did_you_mean(key, valid)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``X``, ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _model_at(
    loc: Sequence[int | str], tree: Mapping[str, Any] | None, root: type[BaseModel]
) -> type[BaseModel] | None:
    """The section model at ``loc`` (``()`` is ``root`` itself), or None if not a section;
    ``task`` is the settings model of the task ``tree`` names."""
    model: type[BaseModel] | None = root
    for part in loc:
        field = model.model_fields.get(str(part)) if model else None
        if field is None:
            return None
        model = _submodel(field.annotation)
        if model is TaskSettings:
            model = _task_settings(tree)
    return model


def _annotation_at(
    loc: Sequence[int | str], tree: Mapping[str, Any] | None, root: type[BaseModel]
) -> Any:
    model = _model_at(loc[:-1], tree, root) if loc else None
    field = model.model_fields.get(str(loc[-1])) if model else None
    return field.annotation if field else None


def _literal_choices(
    loc: Sequence[int | str], tree: Mapping[str, Any], root: type[BaseModel]
) -> list[str]:
    annotation = _annotation_at(loc, tree, root)
    candidates = [annotation, *get_args(annotation)]
    return [str(a) for c in candidates if get_origin(c) is Literal for a in get_args(c)]


def _is_path(annotation: Any) -> bool:
    """Whether a field holds a filesystem path (``Path`` or ``Path | None``)."""
    return annotation is Path or Path in get_args(annotation)


def _absolutize_paths(tree: dict[str, Any], model: type[BaseModel], base: Path) -> None:
    """Make relative path values in ``tree`` absolute against ``base``, in place."""
    for key, value in tree.items():
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            continue
        section = _submodel(field.annotation)
        items = _list_submodel(field.annotation)
        if section is not None and isinstance(value, dict):
            _absolutize_paths(value, section, base)
        elif items is not None and isinstance(value, list):  # train.continual.stages
            for item in value:
                if isinstance(item, dict):
                    _absolutize_paths(item, items, base)
        elif isinstance(value, str) and value and _is_path(field.annotation):
            tree[key] = str(_absolute(value, base))


def _list_submodel(annotation: Any) -> type[BaseModel] | None:
    """The section type of a ``list[Section]`` field (maybe ``| None``), else None."""
    for candidate in (annotation, *get_args(annotation)):
        if get_origin(candidate) is list:
            (item,) = get_args(candidate)
            if isinstance(item, type) and issubclass(item, BaseModel):
                return item
    return None


def _absolute(value: str, base: Path) -> Path:
    if re.match(r"[a-z][a-z0-9_+-]+:", value):  # a name with a scheme (bundled:NAME): as written
        return Path(value)
    path = Path(value).expanduser()
    return Path(os.path.abspath(base / path))
