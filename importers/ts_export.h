/* Writing a (pruned) graph back as files PyTorch loads: the TorchScript archive it was imported
 * from with new tensors and rewritten literals, a state_dict .pth with a JSON of the new channel
 * counts, and a pruned torch.save(model) archive.
 *
 * What the exporters read from the graph (the contract with pruning, engine/ir.h): parameters
 * and buffers are the tensor values named by module path ("layer1.0.conv1.weight") whose data
 * and shape npe_graph_set_tensor_data replaced; CONSTANTS.cN are the tensor values with
 * const_index N; literals are the scalar values with a source span (and list values with one)
 * whose v->i / v->f / items pruning assigned. Nothing else of the graph is written: every other
 * record, attribute and tensor comes from the original files. Every output is written to a
 * temporary file and renamed into place; inputs are never modified. */
#ifndef NPE_IMPORTERS_TS_EXPORT_H
#define NPE_IMPORTERS_TS_EXPORT_H

#include "../engine/ir.h"
#include "../formats/error.h"

/* Write the TorchScript archive orig_archive (the file g was imported from) to out_path with
 * the graph's changes, loadable by torch.jit.load (1.13 and 2.x):
 * - each parameter/buffer whose shape or data differ from data.pkl becomes its own contiguous
 *   storage (offset 0, numel = record size; the storage's record key is kept when no other
 *   tensor shares it, else a new key), and data.pkl is pickled again with the new sizes,
 *   strides and storages, everything else of the module tree kept;
 * - each changed CONSTANTS.cN likewise in constants.pkl and constants/;
 * - code records whose literals changed are rewritten at the literals' spans and their
 *   .debug_pkl is dropped. When module instances sharing one class need different literals,
 *   the class is copied to a new mangled name (__torch__.<module>.___torch_mangle_<N>.<Class>,
 *   N unused in the archive), the instances' objects in data.pkl point at it and the parents'
 *   attribute type annotations follow (parents are split the same way when needed). A literal
 *   that must take two values in one instance (a method inlined twice) or in module-level code
 *   is refused with an error naming the code line and the modules.
 * An unchanged graph gives an archive whose records are byte-identical to the original's
 * (written in the same order, code deflated, tensors stored and 64-byte aligned).
 * orig_archive and out_path may be the same file. */
int npe_ts_export(const npe_graph *g, const char *orig_archive, const char *out_path,
                  npe_error *err);

/* Write the state_dict of the model as torch.save(model.state_dict()) does (an OrderedDict of
 * tensors, loadable by torch.load, also with weights_only=True): every parameter and buffer of
 * the module tree of g->origin (the TorchScript archive g was imported from; its classes'
 * __parameters__ and __buffers__ say which tensor attributes count), named by module path, in
 * state_dict order (per module its parameters, its buffers, then its children). Tensors the
 * graph holds are written from the graph (pruned shapes, original dtype); the others
 * (num_batches_tracked, buffers the traced code never read) are copied from the archive.
 * Without g->origin only the graph's parameters and buffers are written, in graph order. */
int npe_state_dict_export(const npe_graph *g, const char *path, npe_error *err);

/* Write a small JSON object of the layers' channel counts, from the graph's parameter shapes
 * and literals, so a user can rebuild the model class for the state_dict:
 *   {"layer1.0.conv1": {"in_channels": 64, "out_channels": 48, "groups": 1},
 *    "layer1.0.bn1": {"num_features": 48}, "fc": {"in_features": 512, "out_features": 10}}
 * Layers are named by module path (the weight's name without ".weight"), in graph order;
 * convolutions (also transposed: in_channels = weight dim 0), linear layers, batch norms and
 * group norms ({"num_groups": 8, "num_channels": 48}, affine ones only). */
int npe_channels_export(const npe_graph *g, const char *path_json, npe_error *err);

/* Rewrite the torch.save(model) archive in_full_pth (the same model g was traced from) as
 * out_full_pth with the graph's parameters and buffers: each tensor whose module path names a
 * graph tensor that differs gets a new contiguous storage, and the modules of changed tensors get
 * their int attributes out_channels, in_channels, groups (convolutions, groups from the graph's
 * literal), num_features (batch norm), in_features, out_features (linear), num_channels and
 * num_groups (group norm, groups from the graph's literal) set from the new
 * shapes. Everything else of the pickled objects is kept, so torch.load(weights_only=False)
 * with the user's model class importable gives a ready module. Refused when a graph parameter
 * or buffer is missing from the file, or when the file's tensor has another shape than the same
 * tensor in g->origin (when g has one): the file holds another model. in_full_pth and
 * out_full_pth may be the same file. */
int npe_full_model_export(const npe_graph *g, const char *in_full_pth, const char *out_full_pth,
                          npe_error *err);

#endif
