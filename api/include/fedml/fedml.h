// Umbrella header: everything a user of fedml-cpp needs to run simulations with their own model
// and trainer. Includes LibTorch (through the default trainer).
#pragma once

#include "fedml/algorithms/aggregator.h"
#include "fedml/algorithms/fedavg.h"
#include "fedml/algorithms/registry.h"
#include "fedml/api/client_manager.h"
#include "fedml/api/client_trainer.h"
#include "fedml/api/config.h"
#include "fedml/api/federated_data.h"
#include "fedml/api/metrics.h"
#include "fedml/api/round_controller.h"
#include "fedml/api/simulation.h"
#if FEDML_WITH_MPI
#include "fedml/api/mpi_runner.h"
#include "fedml/core/comm/mpi.h"
#endif
#include "fedml/api/torch_trainer.h"
#include "fedml/config.h"
#include "fedml/core/comm/communicator.h"
#include "fedml/core/comm/inproc.h"
#include "fedml/core/data/dataset.h"
#include "fedml/core/message.h"
#include "fedml/core/model_state.h"
#include "fedml/core/random.h"
#include "fedml/core/status.h"
#include "fedml/core/train/local_trainer.h"
#include "fedml/core/train/models.h"
#include "fedml/core/train/torch_bridge.h"
#include "fedml/core/wire.h"
