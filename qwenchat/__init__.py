"""qwenchat: chat with and benchmark Qwen2-7B-Instruct on Snapdragon phones through Genie."""

__version__ = "0.1.0"
