"""mlfit's version, in a leaf module: modules that stamp it on a result import this, not the
package root (whose lazy re-exports reach the API, which would close an import circle)."""

__version__ = "0.1.0"
