"""Stand-ins for the packages diffusers imports but Debian 12 does not ship (huggingface_hub, safetensors).
Only names are provided: nothing here downloads, uploads or reads safetensors files."""
import importlib.abc, importlib.machinery, sys, types


class _Anything:
    """Any attribute, call or decorator use gives something harmless."""

    def __init__(self, name="stub"):
        self._name = name

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]  # used as a decorator
        return _Anything(self._name + "()")

    def __getattr__(self, item):
        if item.startswith("__"):
            raise AttributeError(item)
        return _Anything(self._name + "." + item)

    def __mro_entries__(self, bases):
        return (type(self._name.rsplit(".", 1)[-1], (Exception,), {}),)  # subclassable (error types)


_CONSTANTS = {"HF_HOME": "/nonexistent/hf-home", "HF_HUB_OFFLINE": True, "HF_HUB_DISABLE_TELEMETRY": True,
              "REGEX_COMMIT_HASH": __import__("re").compile("^[0-9a-f]{40}$"), "HF_HUB_CACHE": "/nonexistent/hf-cache",
              "__version__": "0.30.0"}


class _StubModule(types.ModuleType):
    def __getattr__(self, item):
        if item in _CONSTANTS:
            return _CONSTANTS[item]
        if item.startswith("__"):
            raise AttributeError(item)
        if item[:1].isupper() and item.endswith(("Error", "Exception", "Warning")):
            error = type(item, (Exception,), {})
            setattr(self, item, error)
            return error
        return _Anything(self.__name__ + "." + item)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    ROOTS = ("huggingface_hub", "safetensors")

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.ROOTS:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def install():
    sys.meta_path.insert(0, _Finder())
