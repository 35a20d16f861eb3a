"""`imgflow serve`: a job service on the local backend (Starlette on uvicorn).

service.py   lock the data folder, bind, run uvicorn, stop cleanly on SIGTERM
app.py       routes and handlers; guard.py  Host/Origin/token/Content-Type checks
protocol.py  uvicorn's h11 protocol with a read timeout and a connection cap
limits.py    body size and JSON depth; queue.py  the durable job table
worker.py    runs queued jobs one at a time; documents.py  the JSON it answers with
openapi.py   the OpenAPI description served at /openapi.json
"""
