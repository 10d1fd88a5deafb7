"""The imports run one way along the data's journey, and no import cycle exists.

Layers, lowest first (a module may import its own layer and those below it, never above):
  infra (config_checks, errors, files, parallel, plots, provenance, tables) → data → models → evaluation (the scores:
  of latents and of a decoder, read by training and every later stage) → training →
  inversion → the study and the config (study: the experiment, the sweep, the references
  and the diagnostic; config_lib) → the entry points (the package, the Python API, the command
  line and the jobs).
Every import counts, also those inside functions (lazy ones), since they run too.
"""
import ast
import os
import subprocess
import sys


LAYERS = (
    ("compgen.config_checks", "compgen.errors", "compgen.files", "compgen.parallel",
     "compgen.plots", "compgen.provenance", "compgen.tables"),
    ("compgen.data",),
    ("compgen.models",),
    ("compgen.evaluation",),
    ("compgen.training",),
    ("compgen.inversion",),
    ("compgen.study", "compgen.config_lib"),
    ("compgen", "compgen.api", "compgen.cli", "compgen.data.__main__", "compgen.train",
     "compgen.search", "compgen.replay", "compgen.experiment", "compgen.sweep",
     "compgen.bench", "compgen.bench_torch"),
)


def layer(module: str) -> int:
  """The layer of the longest prefix of `module` named in LAYERS."""
  best, depth = None, -1
  for i, names in enumerate(LAYERS):
    for name in names:
      if (module == name or module.startswith(name + ".")) and name.count(".") > depth:
        best, depth = i, name.count(".")
  assert best is not None, f"{module} is in no layer: add it to LAYERS"
  return best


def import_graph(root: str) -> dict[str, set[str]]:
  """{module: compgen modules it imports}, from the source of every module under compgen/."""
  modules = {}
  for folder, _, names in os.walk(os.path.join(root, "compgen")):
    for name in names:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        module = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
        modules[module.removesuffix(".__init__")] = path
  graph = {}
  for module, path in modules.items():
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    deps = set()
    for node in ast.walk(ast.parse(open(path).read())):
      if isinstance(node, ast.Import):
        deps.update(a.name for a in node.names)
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                          + ([base] if base else []))
        for a in node.names:  # `from compgen.data import pipeline` imports the submodule
          deps.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
    graph[module] = {d for d in deps if d in modules and d != module}
  return graph


def upward_imports(graph) -> list[str]:
  return [f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
          for m, deps in sorted(graph.items()) for d in sorted(deps) if layer(d) > layer(m)]


def cycles(graph) -> list[str]:
  """Every back edge a depth-first walk meets, as the cycle it closes."""
  state, found = {}, []
  def visit(module, path):
    state[module] = "open"
    for dep in sorted(graph.get(module, ())):
      if state.get(dep) == "open":
        found.append(" -> ".join(path[path.index(dep):] + [dep]))
      elif dep not in state:
        visit(dep, path + [dep])
    state[module] = "done"
  for module in sorted(graph):
    if module not in state:
      visit(module, [module])
  return found


def test_no_module_imports_a_layer_above_its_own(repo_root):
  upward = upward_imports(import_graph(repo_root))
  assert not upward, "\n".join(upward)


def test_there_is_no_import_cycle(repo_root):
  found = cycles(import_graph(repo_root))
  assert not found, "\n".join(found)


def test_the_checks_catch_the_imports_compgen_once_had(repo_root):
  old = {"compgen.evaluation.interaction": {"compgen.training.health"},
         "compgen.data.pipeline": {"compgen.data.pug"},
         "compgen.data.pug": {"compgen.data.pipeline"},
         "compgen.cli": {"compgen.config_lib"}, "compgen.config_lib": {"compgen.data.splits"}}
  assert upward_imports(old) == [
      "compgen.evaluation.interaction (layer 3) imports compgen.training.health (layer 4)"]
  assert cycles(old) == ["compgen.data.pipeline -> compgen.data.pug -> compgen.data.pipeline"]
  assert layer("compgen.study.sweep") == 6 and layer("compgen.data.__main__") == 7
  graph = import_graph(repo_root)  # the parser resolves `from compgen.data import checks`
  assert "compgen.data.checks" in graph["compgen.data.pipeline"]
  assert "compgen.evaluation.probe" in graph["compgen.training.train_lib"]


def test_evaluation_holds_the_scores_and_imports_nothing_above_the_models(repo_root):
  graph = import_graph(repo_root)
  scores = [m for m in graph if m.startswith("compgen.evaluation")]
  assert sorted(scores) == ["compgen.evaluation", "compgen.evaluation.identifiability",
                            "compgen.evaluation.interaction", "compgen.evaluation.probe",
                            "compgen.evaluation.segmentation"]
  above = [f"{m} imports {d}" for m in scores for d in sorted(graph[m])
           if not d.startswith("compgen.evaluation") and layer(d) > layer("compgen.models")]
  assert not above, above


def test_importing_the_models_loads_no_data_checkpoint_or_plotting_library(repo_root):
  code = ("import sys, compgen.models; print(sorted(m for m in ('tensorflow_datasets', "
          "'orbax.checkpoint', 'matplotlib', 'scipy') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True,
                       timeout=120, check=True)
  assert out.stdout.strip() == "[]"


def test_the_models_and_the_error_home_import_no_data_module(repo_root):
  graph = import_graph(repo_root)
  reach = {m: sorted(d for d in deps if d.startswith("compgen.data"))
           for m, deps in graph.items()
           if m.startswith("compgen.models") or m == "compgen.errors"}
  assert not any(reach.values()), reach
