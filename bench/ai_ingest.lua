-- wrk body for bench/ai_ingest.py: one LLM event per request, as the reference's example.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"provider":"openai","model":"gpt-4o","promptTokens":150,"completionTokens":80,"latencyMs":1200,' ..
  '"statusCode":200,"promptHash":"a1b2c3","metadata":{"feature":"chat","user":"u_42"}}'
