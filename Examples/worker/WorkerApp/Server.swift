// WorkerApp (in progress)
