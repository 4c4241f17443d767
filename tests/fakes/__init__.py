"""Stand-ins for what tests cannot reach: the fake OpenAI-compatible server (openai_server.FakeOpenAI)."""
