/* Channel dependency groups: which output channels of which layers must be cut together, what
 * reads them, and which parameters and literals change when they are cut.
 *
 * How channels are followed
 * -------------------------
 * Every output channel of a producer (conv: weight dim 0; transposed conv: weight dim 1, per
 * conv group when grouped; linear: weight dim 0) is an atom. Each activation tensor carries,
 * along one "channel dim", the atom class at every index (or none: graph inputs, constants).
 * Ops move these labels: BN, activations, pooling, upsampling, dropout keep them; pad adds
 * unlabeled indices; cat along the channel dim concatenates them; flatten/view follow the element
 * order (channel c of [N,C,H,W] owns features c*H*W.. of the flattened tensor); permute/transpose
 * move the channel dim; stack adds a dim; pixel_shuffle maps the r*r block of input channels
 * c*r*r.. to output channel c.
 * Joins unify classes index by index: both sides of add/sub/mul/div (with broadcasting: an SE
 * gate [N,C,1,1] times [N,C,H,W] joins the gate's producer), cat along another dim, stack, two
 * calls of one module (a shared weight's dims join what every call reads), depthwise convolution
 * (input channel c feeds output channels c*m..c*m+m-1, so they join; `groups` is rewritten).
 * A group is a connected set of producers: two producers are in one group when some class holds
 * channels of both. Its channels are its classes, numbered in the order of the first producer
 * (graph order) that holds them; it is named after that producer's module (scope).
 *
 * Never guess: a group is unprunable when one of its channels (the reason given is "reaches
 * model output" when that applies, else the first one found in graph order)
 * - reaches a graph output ("reaches model output 'x'"), or is combined with a graph input or
 *   any tensor whose channels are not followed;
 * - meets an op this analysis cannot see through (the op and node are named): softmax, a
 *   reduction, layer_norm or group_norm over the channel dim, select of one channel, a view that
 *   spreads channels over several dims (ShuffleNet's channel shuffle; YOLO heads' [bs, na, no,
 *   ny, nx]), a channel count used as a number, an op without a rule here (matmul...);
 * - is split into pieces that cannot be cut consistently (see partitions below).
 *
 * Partitions: some ops split a group's channels into pieces that must be cut piece by piece.
 * A grouped convolution (1 < groups < channels) splits its input channels and its output
 * channels into `groups` conv groups that must each keep the same number (the `groups` literal
 * stays, the weight keeps per conv group the columns of that group's kept inputs); chunk, and
 * split into equal sizes, need equal pieces too (split's size literal is rewritten);
 * split_with_sizes and a slice with literal bounds (x[:, a:b]) may keep any number per piece
 * but at least one (the sizes and bounds are rewritten). A group then carries part[] (the piece
 * of each channel) and is ranked per piece (engine/prune.h). A partition is only accepted when
 * it covers all the channels of one group, each equally often (a depthwise conv with multiplier m
 * repeats each m times) and every copy in one piece; two partitions of one group must be the
 * same, or nest (the finer one is kept when it is equal, or when both are free: conv groups of 4
 * inside conv groups of 2); a free split whose pieces are whole groups needs no partition;
 * anything else makes the groups touched unprunable, naming the op.
 *
 * After pruning (engine/prune.h) the shapes are inferred again and every labeled tensor's
 * channel dim is checked against the channels kept, so shape arithmetic that did not follow
 * is an error instead of a silently wrong model. */
#ifndef NPE_ENGINE_GROUPS_H
#define NPE_ENGINE_GROUPS_H

#include <stdint.h>

#include "../formats/error.h"
#include "ir.h"

/* A group channel: channel `chan` of group `group`; {-1, -1} for an index that no group owns
 * (fed by a graph input, padding, a constant) and that pruning never removes. */
typedef struct npe_chanref {
    int32_t group;
    int32_t chan;
} npe_chanref;

/* One dim of one tensor whose indices are group channels. */
typedef struct npe_chanmap {
    int node;         /* node that reads (or makes) the tensor */
    int value;        /* tensor value id */
    int dim;          /* the dim the channels run along */
    int n;            /* size of that dim at analysis */
    npe_chanref *at;  /* n entries */
} npe_chanmap;

/* Role of a parameter dim cut by pruning (npe_groups.cuts). */
enum {
    NPE_CUT_PRODUCER = 0, /* output channels of a conv, transposed conv or linear weight */
    NPE_CUT_CONSUMER,     /* input channels of a conv, transposed conv or linear weight */
    NPE_CUT_CHANNEL,      /* per-channel tensor: BN weight/bias/running stats, biases, a
                           * depthwise conv's weight rows, channel-shaped parameters and
                           * constants met by broadcasting arithmetic */
};

typedef struct npe_cut {
    npe_chanmap map;  /* map.value: a parameter, buffer or constant (it has data) */
    int role;         /* NPE_CUT_* */
    int blocks;       /* > 1: the weight of a grouped conv (dim 1): map.at[] covers blocks *
                       * shape[1] channels, and the rows of block G (dim 0 split in `blocks`
                       * equal parts) keep the columns q whose channel at[G*shape[1]+q] is kept */
} npe_cut;

/* An integer literal of the source that holds a channel count: after pruning it becomes the
 * number of kept indices in [lo, hi) of tensor `tensor`'s channel dim (see npe_groups.tensors). */
typedef struct npe_lit {
    int value;        /* INT value id (NPE_VF_CONST, possibly an item of a list value) */
    int node;         /* node that reads it */
    const char *what; /* "groups", "view size", "expand size", "split size", "slice start",
                       * "slice end" (static string) */
    int tensor;       /* index into npe_groups.tensors */
    int lo, hi;
} npe_lit;

/* A producer: a node whose output channels are channels of groups. */
typedef struct npe_producer {
    int node;
    int weight;       /* weight value id */
    int dim;          /* weight dim cut when its output channels go: 0 (conv, depthwise conv,
                       * linear, depthwise transposed conv) or 1 (transposed conv) */
    int shared;       /* the weight already belongs to an earlier producer node (a module called
                       * more than once): count its norms once */
    int depthwise;    /* depthwise conv: its channels are its input's, it creates none */
    npe_chanmap out;  /* out.value: the node's output; out.at[o] for output channel o */
} npe_producer;

/* A consumer: a node whose weight has an input dim indexed by group channels. */
typedef struct npe_consumer {
    int node;
    npe_chanmap in;   /* in.value: the weight; in.dim: 1 (conv, linear) or 0 (transposed conv) */
    int groups;       /* > 1: a grouped conv; in.at[] then covers its Cin input channels, and
                       * input channel G*(Cin/groups)+q is column q of the rows of conv group G */
} npe_consumer;

typedef struct npe_group {
    char *name;       /* scope of the first producer in graph order (unique) */
    int channels;     /* C */
    int prunable;
    char *reason;     /* why not, NULL when prunable */
    int first_node;   /* the first producer's node */
    int *part;        /* NULL, or the piece of each channel (0..n_parts-1): ranked per piece */
    int n_parts;
    int equal_parts;  /* every piece must keep the same number of channels */
    /* Indices into npe_groups.producers / consumers / cuts (NPE_CUT_CHANNEL ones) / lits of the
     * entries holding at least one channel of this group; filter their .at[] by group id. */
    int *producers, n_producers;
    int *consumers, n_consumers;
    int *params, n_params;
    int *lits, n_lits;
} npe_group;

typedef struct npe_groups {
    npe_group *groups;
    int n_groups;
    npe_producer *producers;   /* graph order */
    int n_producers;
    npe_consumer *consumers;   /* graph order */
    int n_consumers;
    npe_cut *cuts;             /* every parameter dim pruning may cut (one per value and dim) */
    int n_cuts;
    npe_chanmap *tensors;      /* every activation with followed channels (map.node: producer) */
    int n_tensors;
    npe_lit *lits;
    int n_lits;
    npe_tshape inputs[8];      /* input shapes of the analysis (pruning infers with them) */
    int n_inputs;
    int n_values, n_nodes;     /* of the analysed graph: a pruned graph must be it or a clone */
} npe_groups;

/* Infer g's shapes from the input shapes, then find the groups. *out is NULL on failure; err
 * names the node when inference fails. g keeps the inferred shapes. */
int npe_groups_find(npe_graph *g, const npe_tshape *inputs, int n_inputs, npe_groups **out,
                    npe_error *err);
void npe_groups_destroy(npe_groups *G); /* NULL accepted */

/* Index of the group called name, -1 if none. */
int npe_groups_find_name(const npe_groups *G, const char *name);

/* User-facing name of a node as a layer: its scope, or its first output's name when it has
 * none (functional calls in the root module). */
const char *npe_layer_name(const npe_graph *g, int node);

#endif
