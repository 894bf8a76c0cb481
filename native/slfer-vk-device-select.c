// VK_LAYER_SLFER_device_select: a Vulkan instance layer that shows the application only the physical
// device named by SLFER_VK_DEVICE. Dawn (the webgpu engine) picks an adapter by name or power
// preference only, and NVIDIA's Vulkan driver ignores CUDA_VISIBLE_DEVICES, so on a machine with N
// identical GPUs every worker of `slfer-dist launch` would open GPU 0. With this layer each worker
// sees exactly its own GPU.
//
//   SLFER_VK_DEVICE=uuid:<32 hex digits>  VkPhysicalDeviceIDProperties.deviceUUID; dashes and a 'GPU-'
//                                         prefix are allowed (NVIDIA's deviceUUID is nvidia-smi's UUID)
//   SLFER_VK_DEVICE=index:<n>             the n-th device in the order the layers below report them
//   SLFER_VK_DEVICE=pci:[dddd:]bb:dd.f    PCI address, for devices with VK_EXT_pci_bus_info
//   unset or empty                        every device (the layer does nothing)
//
// When nothing matches (or the value is malformed), vkEnumeratePhysicalDevices returns no device and
// the layer prints the devices it could have chosen, one a line, to stderr. If
// SLFER_VK_DEVICE_REPORT names a file, the layer also writes its choice and the devices there
// (tab-separated), so slfer-dist can check that the layer really ran and report what it chose.
//
// Only instance-level functions are intercepted; the loader leaves an instance-only layer out of the
// device chain. Everything not intercepted goes straight to the next layer.
#define _POSIX_C_SOURCE 200809L // strdup, strncasecmp
#include <vulkan/vk_layer.h>
#include <vulkan/vulkan.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LAYER_NAME "VK_LAYER_SLFER_device_select"
#define EXPORT __attribute__((visibility("default")))

typedef enum { SEL_ALL, SEL_INDEX, SEL_UUID, SEL_PCI, SEL_INVALID } SelectionKind;

typedef struct {
  SelectionKind kind;
  uint32_t index;
  uint8_t uuid[VK_UUID_SIZE];
  uint32_t domain, bus, device, function;
  char text[128]; // the value as given, for messages
} Selection;

typedef struct {
  VkPhysicalDeviceProperties props;
  bool has_uuid;
  uint8_t uuid[VK_UUID_SIZE];
  bool has_pci;
  uint32_t domain, bus, device, function;
} DeviceInfo;

// What the layer keeps per VkInstance: the next layer's entry points and this instance's choice.
typedef struct Instance {
  VkInstance handle;
  PFN_vkGetInstanceProcAddr next_gipa;
  PFN_vkDestroyInstance destroy_instance;
  PFN_vkEnumeratePhysicalDevices enumerate_devices;
  PFN_vkEnumeratePhysicalDeviceGroups enumerate_groups;
  PFN_vkEnumeratePhysicalDeviceGroupsKHR enumerate_groups_khr;
  PFN_vkGetPhysicalDeviceProperties get_properties;
  PFN_vkGetPhysicalDeviceProperties2 get_properties2; // core (needs a 1.1 device) or the KHR alias
  bool properties2_is_core;
  PFN_vkEnumerateDeviceExtensionProperties device_extensions;
  Selection selection;
  char *report_path;
  bool chosen_known; // the choice is made once per instance, on the first enumeration
  VkPhysicalDevice chosen;
  struct Instance *next;
} Instance;

// Instances live in a short list; the loader may call from any thread.
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static Instance *instances;

static Instance *find_instance(VkInstance handle) {
  pthread_mutex_lock(&lock);
  Instance *in = instances;
  while (in && in->handle != handle) in = in->next;
  pthread_mutex_unlock(&lock);
  return in;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads 1..max_digits hex digits at *p; returns false (and leaves *p) when there are none or too many.
static bool read_hex(const char **p, int max_digits, uint32_t *out) {
  const char *s = *p;
  uint32_t v = 0;
  int n = 0;
  while (hex_value(s[n]) >= 0) {
    if (++n > max_digits) return false;
    v = v * 16 + (uint32_t)hex_value(s[n - 1]);
  }
  if (n == 0) return false;
  *out = v;
  *p = s + n;
  return true;
}

static void parse_selection(const char *value, Selection *sel) {
  memset(sel, 0, sizeof *sel);
  if (!value || !*value) {
    sel->kind = SEL_ALL;
    return;
  }
  snprintf(sel->text, sizeof sel->text, "%s", value);
  sel->kind = SEL_INVALID;
  if (strncmp(value, "index:", 6) == 0) {
    const char *s = value + 6;
    uint64_t v = 0;
    int n = 0;
    for (; s[n] >= '0' && s[n] <= '9' && n < 10; n++) v = v * 10 + (uint64_t)(s[n] - '0');
    if (n == 0 || s[n] || v > UINT32_MAX) return;
    sel->index = (uint32_t)v;
    sel->kind = SEL_INDEX;
  } else if (strncmp(value, "uuid:", 5) == 0) {
    const char *s = value + 5;
    if (strncasecmp(s, "GPU-", 4) == 0) s += 4;
    unsigned digits = 0;
    for (; *s; s++) {
      if (*s == '-') continue;
      int h = hex_value(*s);
      if (h < 0 || digits >= 2 * VK_UUID_SIZE) return;
      sel->uuid[digits / 2] = (uint8_t)(digits % 2 ? sel->uuid[digits / 2] | h : h << 4);
      digits++;
    }
    if (digits != 2 * VK_UUID_SIZE) return;
    sel->kind = SEL_UUID;
  } else if (strncmp(value, "pci:", 4) == 0) {
    // [domain:]bus:device.function, as lspci (0000:3b:00.0) and nvidia-smi (00000000:3B:00.0) print it
    const char *s = value + 4;
    uint32_t a, b;
    if (!read_hex(&s, 8, &a) || *s++ != ':' || !read_hex(&s, 8, &b)) return;
    if (*s == ':') {
      s++;
      sel->domain = a;
      sel->bus = b;
      if (!read_hex(&s, 2, &sel->device)) return;
    } else {
      sel->bus = a;
      sel->device = b;
    }
    if (*s++ != '.' || !read_hex(&s, 1, &sel->function) || *s) return;
    if (sel->bus > 0xff || sel->device > 0x1f || sel->function > 7) return;
    sel->kind = SEL_PCI;
  }
}

static void format_uuid(const uint8_t *u, char out[37]) {
  char *o = out;
  for (unsigned i = 0; i < VK_UUID_SIZE; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
    o += sprintf(o, "%02x", u[i]);
  }
}

static bool has_device_extension(Instance *in, VkPhysicalDevice pd, const char *name) {
  uint32_t n = 0;
  if (in->device_extensions(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0) return false;
  VkExtensionProperties *ext = calloc(n, sizeof *ext);
  if (!ext) return false;
  bool found = false;
  if (in->device_extensions(pd, NULL, &n, ext) >= 0)
    for (uint32_t i = 0; i < n && !found; i++) found = strcmp(ext[i].extensionName, name) == 0;
  free(ext);
  return found;
}

static void describe(Instance *in, VkPhysicalDevice pd, DeviceInfo *d) {
  memset(d, 0, sizeof *d);
  in->get_properties(pd, &d->props);
  // vkGetPhysicalDeviceProperties2 only where the loader can route it: core on a 1.1 instance and
  // device, else the KHR alias when the application enabled it. Otherwise UUID and PCI stay unknown.
  if (!in->get_properties2 || (in->properties2_is_core && d->props.apiVersion < VK_API_VERSION_1_1)) return;
  VkPhysicalDevicePCIBusInfoPropertiesEXT pci = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PCI_BUS_INFO_PROPERTIES_EXT};
  VkPhysicalDeviceIDProperties id = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES};
  VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &id};
  d->has_pci = has_device_extension(in, pd, VK_EXT_PCI_BUS_INFO_EXTENSION_NAME);
  if (d->has_pci) id.pNext = &pci;
  in->get_properties2(pd, &p2);
  d->has_uuid = true;
  memcpy(d->uuid, id.deviceUUID, VK_UUID_SIZE);
  if (d->has_pci) {
    d->domain = pci.pciDomain;
    d->bus = pci.pciBus;
    d->device = pci.pciDevice;
    d->function = pci.pciFunction;
  }
}

static bool matches(const Selection *sel, uint32_t index, const DeviceInfo *d) {
  switch (sel->kind) {
    case SEL_INDEX: return sel->index == index;
    case SEL_UUID: return d->has_uuid && memcmp(sel->uuid, d->uuid, VK_UUID_SIZE) == 0;
    case SEL_PCI:
      return d->has_pci && sel->domain == d->domain && sel->bus == d->bus && sel->device == d->device && sel->function == d->function;
    default: return false;
  }
}

static const char *type_name(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
  }
}

static void device_fields(const DeviceInfo *d, char uuid[37], char pci[32]) {
  if (d->has_uuid) format_uuid(d->uuid, uuid);
  else strcpy(uuid, "-");
  if (d->has_pci) snprintf(pci, 32, "%04x:%02x:%02x.%x", d->domain, d->bus, d->device, d->function);
  else strcpy(pci, "-");
}

// The user's view: what was asked, and every device with the values that would select it.
static void print_choices(const Selection *sel, const DeviceInfo *infos, uint32_t n) {
  if (sel->kind == SEL_INVALID)
    fprintf(stderr, "%s: SLFER_VK_DEVICE=%s is malformed (expected uuid:<32 hex digits>, index:<n> or pci:<domain:bus:device.function>); exposing no device. Devices:\n",
            LAYER_NAME, sel->text);
  else
    fprintf(stderr, "%s: SLFER_VK_DEVICE=%s matches none of the %u Vulkan devices; exposing none. Devices:\n", LAYER_NAME, sel->text, n);
  for (uint32_t i = 0; i < n; i++) {
    char uuid[37], pci[32];
    device_fields(&infos[i], uuid, pci);
    fprintf(stderr, "%s:   index:%u uuid:%s pci:%s \"%s\" (%s)\n", LAYER_NAME, i, uuid, pci, infos[i].props.deviceName, type_name(infos[i].props.deviceType));
  }
}

static void write_report(const char *path, const Selection *sel, int chosen, const DeviceInfo *infos, uint32_t n) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "%s: cannot write SLFER_VK_DEVICE_REPORT=%s\n", LAYER_NAME, path);
    return;
  }
  fprintf(f, "selection\t%s\n", sel->text);
  if (sel->kind == SEL_INVALID) fprintf(f, "chosen\tinvalid\n");
  else if (chosen < 0) fprintf(f, "chosen\tnone\n");
  else fprintf(f, "chosen\t%d\n", chosen);
  for (uint32_t i = 0; i < n; i++) {
    char uuid[37], pci[32];
    device_fields(&infos[i], uuid, pci);
    fprintf(f, "device\t%u\t%s\t%s\t%s\t%s\n", i, uuid, pci, type_name(infos[i].props.deviceType), infos[i].props.deviceName);
  }
  fclose(f);
}

// The next layer's devices, all of them (the count may grow between the two calls).
static VkResult all_devices(Instance *in, VkPhysicalDevice **out, uint32_t *count) {
  for (;;) {
    uint32_t n = 0;
    VkResult r = in->enumerate_devices(in->handle, &n, NULL);
    if (r < 0) return r;
    VkPhysicalDevice *list = calloc(n ? n : 1, sizeof *list);
    if (!list) return VK_ERROR_OUT_OF_HOST_MEMORY;
    r = in->enumerate_devices(in->handle, &n, list);
    if (r == VK_SUCCESS) {
      *out = list;
      *count = n;
      return VK_SUCCESS;
    }
    free(list);
    if (r != VK_INCOMPLETE) return r;
  }
}

// Makes this instance's choice once (printing and reporting it once): the device or VK_NULL_HANDLE.
static VkResult choose(Instance *in, VkPhysicalDevice *chosen) {
  pthread_mutex_lock(&lock);
  VkResult r = VK_SUCCESS;
  if (!in->chosen_known) {
    VkPhysicalDevice *list = NULL;
    uint32_t n = 0;
    r = all_devices(in, &list, &n);
    DeviceInfo *infos = r == VK_SUCCESS ? calloc(n ? n : 1, sizeof *infos) : NULL;
    if (r == VK_SUCCESS && !infos) r = VK_ERROR_OUT_OF_HOST_MEMORY;
    if (r == VK_SUCCESS) {
      int pick = -1;
      for (uint32_t i = 0; i < n; i++) {
        describe(in, list[i], &infos[i]);
        if (pick < 0 && matches(&in->selection, i, &infos[i])) pick = (int)i;
      }
      if (pick < 0) print_choices(&in->selection, infos, n);
      if (in->report_path) write_report(in->report_path, &in->selection, pick, infos, n);
      in->chosen = pick < 0 ? VK_NULL_HANDLE : list[pick];
      in->chosen_known = true;
    }
    free(infos);
    free(list);
  }
  *chosen = in->chosen;
  pthread_mutex_unlock(&lock);
  return r;
}

static VkResult VKAPI_CALL layer_EnumeratePhysicalDevices(VkInstance instance, uint32_t *count, VkPhysicalDevice *devices) {
  Instance *in = find_instance(instance);
  if (!in) return VK_ERROR_INITIALIZATION_FAILED;
  if (in->selection.kind == SEL_ALL) return in->enumerate_devices(instance, count, devices);
  VkPhysicalDevice chosen;
  VkResult r = choose(in, &chosen);
  if (r != VK_SUCCESS) return r;
  uint32_t available = chosen ? 1 : 0;
  if (!devices) {
    *count = available;
    return VK_SUCCESS;
  }
  if (*count < available) {
    *count = 0;
    return VK_INCOMPLETE;
  }
  if (available) devices[0] = chosen;
  *count = available;
  return VK_SUCCESS;
}

// Groups: the chosen device alone, as a group of one (a device of it can always be created alone).
static VkResult enumerate_groups(Instance *in, PFN_vkEnumeratePhysicalDeviceGroups next, uint32_t *count, VkPhysicalDeviceGroupProperties *groups) {
  if (in->selection.kind == SEL_ALL) return next(in->handle, count, groups);
  VkPhysicalDevice chosen;
  VkResult r = choose(in, &chosen);
  if (r != VK_SUCCESS) return r;
  uint32_t available = chosen ? 1 : 0;
  if (!groups) {
    *count = available;
    return VK_SUCCESS;
  }
  if (*count < available) {
    *count = 0;
    return VK_INCOMPLETE;
  }
  if (available) {
    // sType and pNext are the application's; only the output members are written.
    groups[0].physicalDeviceCount = 1;
    memset(groups[0].physicalDevices, 0, sizeof groups[0].physicalDevices);
    groups[0].physicalDevices[0] = chosen;
    groups[0].subsetAllocation = VK_FALSE;
  }
  *count = available;
  return VK_SUCCESS;
}

static VkResult VKAPI_CALL layer_EnumeratePhysicalDeviceGroups(VkInstance instance, uint32_t *count, VkPhysicalDeviceGroupProperties *groups) {
  Instance *in = find_instance(instance);
  if (!in || !in->enumerate_groups) return VK_ERROR_INITIALIZATION_FAILED;
  return enumerate_groups(in, in->enumerate_groups, count, groups);
}

static VkResult VKAPI_CALL layer_EnumeratePhysicalDeviceGroupsKHR(VkInstance instance, uint32_t *count, VkPhysicalDeviceGroupProperties *groups) {
  Instance *in = find_instance(instance);
  if (!in || !in->enumerate_groups_khr) return VK_ERROR_INITIALIZATION_FAILED;
  return enumerate_groups(in, in->enumerate_groups_khr, count, groups);
}

static bool enabled(const VkInstanceCreateInfo *ci, const char *extension) {
  for (uint32_t i = 0; i < ci->enabledExtensionCount; i++)
    if (strcmp(ci->ppEnabledExtensionNames[i], extension) == 0) return true;
  return false;
}

static VkResult VKAPI_CALL layer_CreateInstance(const VkInstanceCreateInfo *ci, const VkAllocationCallbacks *alloc, VkInstance *instance) {
  // The loader passes the next layer's entry point in the chain; take it and advance the chain
  // for the layers below (the loader owns the chain and expects each layer to do this).
  VkLayerInstanceCreateInfo *link = (VkLayerInstanceCreateInfo *)ci->pNext;
  while (link && !(link->sType == VK_STRUCTURE_TYPE_LOADER_INSTANCE_CREATE_INFO && link->function == VK_LAYER_LINK_INFO))
    link = (VkLayerInstanceCreateInfo *)link->pNext;
  if (!link || !link->u.pLayerInfo) return VK_ERROR_INITIALIZATION_FAILED;
  PFN_vkGetInstanceProcAddr next_gipa = link->u.pLayerInfo->pfnNextGetInstanceProcAddr;
  PFN_vkCreateInstance next_create = (PFN_vkCreateInstance)next_gipa(VK_NULL_HANDLE, "vkCreateInstance");
  if (!next_create) return VK_ERROR_INITIALIZATION_FAILED;

  Instance *in = calloc(1, sizeof *in); // before the instance exists, so failing here leaks nothing
  const char *report = getenv("SLFER_VK_DEVICE_REPORT");
  if (in && report && *report && !(in->report_path = strdup(report))) {
    free(in);
    in = NULL;
  }
  if (!in) return VK_ERROR_OUT_OF_HOST_MEMORY;
  link->u.pLayerInfo = link->u.pLayerInfo->pNext;
  VkResult r = next_create(ci, alloc, instance);
  if (r != VK_SUCCESS) {
    free(in->report_path);
    free(in);
    return r;
  }

  VkInstance h = *instance;
  in->handle = h;
  in->next_gipa = next_gipa;
  in->destroy_instance = (PFN_vkDestroyInstance)next_gipa(h, "vkDestroyInstance");
  in->enumerate_devices = (PFN_vkEnumeratePhysicalDevices)next_gipa(h, "vkEnumeratePhysicalDevices");
  in->enumerate_groups = (PFN_vkEnumeratePhysicalDeviceGroups)next_gipa(h, "vkEnumeratePhysicalDeviceGroups");
  in->enumerate_groups_khr = (PFN_vkEnumeratePhysicalDeviceGroupsKHR)next_gipa(h, "vkEnumeratePhysicalDeviceGroupsKHR");
  in->get_properties = (PFN_vkGetPhysicalDeviceProperties)next_gipa(h, "vkGetPhysicalDeviceProperties");
  in->device_extensions = (PFN_vkEnumerateDeviceExtensionProperties)next_gipa(h, "vkEnumerateDeviceExtensionProperties");
  // The loader calls a driver's vkGetPhysicalDeviceProperties2 for a 1.1 application, or its KHR
  // alias when the application enabled the extension; any other call would reach a null pointer.
  uint32_t api = ci->pApplicationInfo ? ci->pApplicationInfo->apiVersion : 0;
  if (api >= VK_API_VERSION_1_1) {
    in->get_properties2 = (PFN_vkGetPhysicalDeviceProperties2)next_gipa(h, "vkGetPhysicalDeviceProperties2");
    in->properties2_is_core = in->get_properties2 != NULL;
  }
  if (!in->get_properties2 && enabled(ci, VK_KHR_GET_PHYSICAL_DEVICE_PROPERTIES_2_EXTENSION_NAME))
    in->get_properties2 = (PFN_vkGetPhysicalDeviceProperties2)next_gipa(h, "vkGetPhysicalDeviceProperties2KHR");
  parse_selection(getenv("SLFER_VK_DEVICE"), &in->selection);
  if (!in->destroy_instance || !in->enumerate_devices || !in->get_properties || !in->device_extensions) {
    if (in->destroy_instance) in->destroy_instance(h, alloc);
    free(in->report_path);
    free(in);
    return VK_ERROR_INITIALIZATION_FAILED;
  }

  pthread_mutex_lock(&lock);
  in->next = instances;
  instances = in;
  pthread_mutex_unlock(&lock);
  return VK_SUCCESS;
}

static void VKAPI_CALL layer_DestroyInstance(VkInstance instance, const VkAllocationCallbacks *alloc) {
  pthread_mutex_lock(&lock);
  Instance **p = &instances;
  while (*p && (*p)->handle != instance) p = &(*p)->next;
  Instance *in = *p;
  if (in) *p = in->next;
  pthread_mutex_unlock(&lock);
  if (!in) return;
  in->destroy_instance(instance, alloc);
  free(in->report_path);
  free(in);
}

static PFN_vkVoidFunction VKAPI_CALL layer_GetInstanceProcAddr(VkInstance instance, const char *name) {
  if (strcmp(name, "vkGetInstanceProcAddr") == 0) return (PFN_vkVoidFunction)layer_GetInstanceProcAddr;
  if (strcmp(name, "vkCreateInstance") == 0) return (PFN_vkVoidFunction)layer_CreateInstance;
  if (instance == VK_NULL_HANDLE) return NULL;
  Instance *in = find_instance(instance);
  if (!in) return NULL;
  PFN_vkVoidFunction next = in->next_gipa(instance, name);
  // Our versions only of what the layers below provide (a 1.0 instance has no device groups).
  if (!next) return NULL;
  if (strcmp(name, "vkDestroyInstance") == 0) return (PFN_vkVoidFunction)layer_DestroyInstance;
  if (strcmp(name, "vkEnumeratePhysicalDevices") == 0) return (PFN_vkVoidFunction)layer_EnumeratePhysicalDevices;
  if (strcmp(name, "vkEnumeratePhysicalDeviceGroups") == 0) return (PFN_vkVoidFunction)layer_EnumeratePhysicalDeviceGroups;
  if (strcmp(name, "vkEnumeratePhysicalDeviceGroupsKHR") == 0) return (PFN_vkVoidFunction)layer_EnumeratePhysicalDeviceGroupsKHR;
  return next;
}

// Exported entry points. The loader finds the layer through the negotiation (interface 2); the
// others are exported for loaders and tools that look them up by name. They forward to the static
// functions above, whose addresses are what the loader is given, so no exported name can be
// interposed by a same-named symbol elsewhere in the process (the loader exports these names too).
EXPORT VKAPI_ATTR VkResult VKAPI_CALL vkNegotiateLoaderLayerInterfaceVersion(VkNegotiateLayerInterface *v) {
  if (!v || v->sType != LAYER_NEGOTIATE_INTERFACE_STRUCT || v->loaderLayerInterfaceVersion < 2) return VK_ERROR_INITIALIZATION_FAILED;
  v->loaderLayerInterfaceVersion = 2;
  v->pfnGetInstanceProcAddr = layer_GetInstanceProcAddr;
  v->pfnGetDeviceProcAddr = NULL; // instance-only layer
  v->pfnGetPhysicalDeviceProcAddr = NULL;
  return VK_SUCCESS;
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vkGetInstanceProcAddr(VkInstance instance, const char *name) {
  return layer_GetInstanceProcAddr(instance, name);
}

EXPORT VKAPI_ATTR VkResult VKAPI_CALL vkCreateInstance(const VkInstanceCreateInfo *ci, const VkAllocationCallbacks *alloc, VkInstance *instance) {
  return layer_CreateInstance(ci, alloc, instance);
}

EXPORT VKAPI_ATTR void VKAPI_CALL vkDestroyInstance(VkInstance instance, const VkAllocationCallbacks *alloc) {
  layer_DestroyInstance(instance, alloc);
}
